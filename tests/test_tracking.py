"""Complexity of every checkpoint of a stored run: the table, resuming, reuse, the join, the CLI."""

import shutil

import pandas as pd
import pytest

from grok_lib.complexity import tracking
from grok_lib.cli import main
from grok_lib.errors import GrokError
from grok_lib.complexity.measurement import PAPER, BayesConfig
from grok_lib.complexity.coders import CODERS
from grok_lib.complexity.tracking import (COMPLEXITY_FILE, LEGACY_COLUMNS, SETTINGS_FILE, TrackingSettings,
                                          load_complexity, read_complexity, read_table, track_complexity)
from grok_lib.store import Run

FAST = TrackingSettings(eps=(1.0, 0.25), how=PAPER.but(budget=BayesConfig(n_random=2, n_guided=2, estimator="ET",
                                                                         n_trees=4)))


def test_every_checkpoint_gets_one_row_per_eps_and_complexity_falls_as_eps_grows(run):
    table = track_complexity(run, FAST, progress=False)
    epochs = run.checkpoints()
    assert list(zip(table.epoch, table.eps)) == [(e, eps) for e in epochs for eps in (0.25, 1.0)]
    for _, rows in table.groupby("epoch"):
        assert rows.pooled_paper_bytes.is_monotonic_decreasing
        assert (rows.pooled_paper_bytes <= rows[["alg1_paper_bytes", "alg2_paper_bytes"]].min(axis=1)).all()
    assert (table.alg1_symbols_bytes <= table.alg1_paper_bytes).all()
    assert (table.alg1_paper_bits == 8 * table.alg1_paper_bytes).all()
    assert (table.alg1_paper_bytes < table.naive_bytes).all()
    assert (table.alg1_bound_paper > 0).all()
    assert (table.alg1_description_length_paper_bits > table.alg1_paper_bits).all()


ANSWER_QUANTITIES = ["tau", "delta", "ranks", "scales", "train_loss", "train_acc", "test_loss", "test_acc", "n_evaluations"]


def test_the_three_answers_have_the_same_columns_one_set_per_coder(run):
    table = track_complexity(run, FAST, progress=False, epochs=run.checkpoints()[-1:])
    per_coder = ["{}_bytes", "{}_bits", "{}_codec", "bound_{}", "description_length_{}_bits"]
    answer = [q.format(coder) for coder in CODERS for q in per_coder] + ANSWER_QUANTITIES
    shared = ["epoch", "eps", "naive_bytes", "naive_bits", "reference_train_loss", "n_train", "seconds"]
    assert sorted(table.columns) == sorted(shared + [p + q for p in ("alg1_", "pooled_", "alg2_") for q in answer])
    assert not table.drop(columns=["alg1_tau", "pooled_tau", "alg2_tau"]).isna().any().any()


def test_a_new_coder_adds_its_columns_without_touching_tracking(run, monkeypatch):
    monkeypatch.setitem(CODERS, "twice", CODERS["paper"])  # the registry every module reads
    table = track_complexity(run, FAST, progress=False, epochs=run.checkpoints()[-1:])
    for prefix in ("alg1_", "pooled_", "alg2_"):
        assert (table[f"{prefix}twice_bytes"] == table[f"{prefix}paper_bytes"]).all()
        assert (table[f"{prefix}bound_twice"] == table[f"{prefix}bound_paper"]).all()


# the header of a complexity.csv row written before the alg1_ / pooled_ / alg2_ prefixes
OLD_HEADER = ("epoch,eps,complexity_bytes,complexity_bits,symbols_bytes,symbols_bits,symbols_codec,tau,delta,ranks,"
              "coarse_train_loss,coarse_train_acc,coarse_test_loss,coarse_test_acc,n_evaluations,bound,bound_symbols,"
              "description_length_bits,description_length_symbols_bits,pooled_bytes,pooled_bits,pooled_symbols_bytes,"
              "pooled_tau,pooled_delta,pooled_bound,pooled_description_length_bits,alg2_bytes,alg2_bits,"
              "alg2_symbols_bytes,alg2_symbols_bits,alg2_delta,alg2_train_loss,alg2_train_acc,alg2_n_evaluations,"
              "alg2_bound,naive_bytes,naive_bits,reference_train_loss,n_train,seconds").split(",")


def _as_old_table(new: pd.DataFrame) -> pd.DataFrame:
    """`new` written the old way: old names, only the old header's columns."""
    new_name = {old: LEGACY_COLUMNS.get(old, old) for old in OLD_HEADER}
    return new[[new_name[old] for old in OLD_HEADER]].set_axis(OLD_HEADER, axis=1)


def test_a_table_with_the_old_column_names_reads_back_with_the_new_ones(run, tmp_path):
    new = track_complexity(run, FAST, progress=False, epochs=run.checkpoints()[:1])
    (tmp_path / "old.csv").write_text(_as_old_table(new).to_csv(index=False))
    again = read_table(tmp_path / "old.csv")
    assert list(again.columns) == [LEGACY_COLUMNS.get(old, old) for old in OLD_HEADER]
    pd.testing.assert_frame_equal(again, new[again.columns])
    assert not set(LEGACY_COLUMNS) & set(LEGACY_COLUMNS.values())  # no new name is an old one


def test_tracking_resumes_on_an_old_table_and_keeps_its_rows(run):
    first = run.checkpoints()[:2]
    new = track_complexity(run, FAST, progress=False, epochs=first)
    (run.path / COMPLEXITY_FILE).write_text(_as_old_table(new).to_csv(index=False))
    table = track_complexity(run, FAST, progress=False)
    assert sorted(set(table.epoch)) == run.checkpoints() and not set(LEGACY_COLUMNS) & set(table.columns)
    old_rows = table[table.epoch.isin(first)].reset_index(drop=True)
    kept = [LEGACY_COLUMNS.get(old, old) for old in OLD_HEADER]
    pd.testing.assert_frame_equal(old_rows[kept], new[kept])
    assert table.loc[~table.epoch.isin(first), "alg1_paper_codec"].notna().all()
    assert list(pd.read_csv(run.path / COMPLEXITY_FILE).columns) == list(table.columns)
    assert load_complexity(run).alg1_paper_bytes.notna().all()


def test_a_second_call_measures_nothing(run, monkeypatch):
    first = track_complexity(run, FAST, progress=False)
    stamp = (run.path / COMPLEXITY_FILE).stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was measured again")

    monkeypatch.setattr(tracking, "measure_checkpoint", refuse)
    pd.testing.assert_frame_equal(track_complexity(run, FAST, progress=False), first)
    assert (run.path / COMPLEXITY_FILE).stat().st_mtime_ns == stamp


def test_an_interrupted_pass_resumes_after_its_last_finished_checkpoint(run, monkeypatch):
    real = tracking.measure_checkpoint
    measured = []

    def interrupted(run_, epoch, *args, **kwargs):
        if len(measured) == 2:
            raise KeyboardInterrupt
        measured.append(epoch)
        return real(run_, epoch, *args, **kwargs)

    monkeypatch.setattr(tracking, "measure_checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        track_complexity(run, FAST, progress=False)
    partial = pd.read_csv(run.path / COMPLEXITY_FILE)
    assert sorted(set(partial.epoch)) == measured == run.checkpoints()[:2]

    resumed = []
    monkeypatch.setattr(tracking, "measure_checkpoint",
                        lambda run_, epoch, *a, **k: resumed.append(epoch) or real(run_, epoch, *a, **k))
    table = track_complexity(run, FAST, progress=False)
    assert resumed == run.checkpoints()[2:]
    pd.testing.assert_frame_equal(table[table.epoch.isin(measured)].reset_index(drop=True), partial)


def test_other_settings_are_refused_and_nothing_stored_changes(run):
    track_complexity(run, FAST, progress=False, epochs=run.checkpoints()[:1])
    before = {name: (run.path / name).read_bytes() for name in (COMPLEXITY_FILE, SETTINGS_FILE)}
    with pytest.raises(GrokError, match="^settings:"):
        track_complexity(run, TrackingSettings(eps=(1.0,), how=FAST.how), progress=False)
    assert before == {name: (run.path / name).read_bytes() for name in before}


def test_worker_processes_give_the_same_table_as_one_process(run, trained_run, tmp_path):
    other = Run(tmp_path / "copy" / run.path.name, run.config)
    shutil.copytree(trained_run.path, other.path)
    alone = track_complexity(run, FAST, progress=False)
    pooled = track_complexity(other, FAST, progress=False, workers=2)
    pd.testing.assert_frame_equal(alone.drop(columns="seconds"), pooled.drop(columns="seconds"))
    assert pooled.equals(tracking.read_complexity(other))  # the stored table is the returned one


def test_missing_checkpoints_and_bad_settings_are_rejected(run):
    with pytest.raises(GrokError, match="^epochs:"):
        track_complexity(run, FAST, progress=False, epochs=[999])
    with pytest.raises(GrokError, match="^workers:"):
        track_complexity(run, FAST, progress=False, workers=0)
    with pytest.raises(GrokError, match="^eps:"):
        TrackingSettings(eps=(1.0, 0.0))
    assert not (run.path / COMPLEXITY_FILE).exists() and not (run.path / SETTINGS_FILE).exists()


def test_the_loader_joins_complexity_with_the_training_metrics(run):
    track_complexity(run, FAST, progress=False)
    joined = load_complexity(run)
    for column in ("alg1_paper_bytes", "naive_bytes", "train_acc", "test_acc", "l2_norm", "effective_rank", "regime"):
        assert column in joined
    assert len(joined) == 2 * len(run.checkpoints()) and joined.train_acc.notna().all()


def test_the_complexity_command_measures_a_run_and_rejects_bad_input_in_one_line(run, capsys):
    store = ["--store", str(run.path.parent)]
    fast = ["--n-random", "2", "--n-guided", "1", "--estimator", "ET", "--checkpoint", "4"]
    assert main([*store, "complexity", str(run.path), "--eps", "0", *fast]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: eps:") and len(err.strip().splitlines()) == 1
    assert not (run.path / COMPLEXITY_FILE).exists()
    assert main([*store, "complexity", str(run.path), "--eps", "1", *fast, "--algorithm-2", "golden"]) == 2
    assert capsys.readouterr().err.startswith("error: algorithm_2: unknown method 'golden'; allowed: sweep")
    assert main([*store, "complexity", str(run.path), "--eps", "1", *fast, "--reallocate", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: reallocate: must be an integer >= 0")
    assert main([*store, "complexity", str(run.path), "--eps", "1", *fast, "--quiet"]) == 0
    assert "Algorithm 1" in capsys.readouterr().out and (run.path / COMPLEXITY_FILE).exists()
    with pytest.raises(SystemExit):
        main([*store, "complexity", "--objective", "bogus"])
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["complexity", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(" ".join(coder.description.split()) in out for coder in CODERS.values())
    assert main([*store, "complexity", "--op", "add", "--p", "7"]) == 2
    assert capsys.readouterr().err.startswith("error: run:")


def test_a_table_without_its_settings_file_is_refused_and_keeps_every_row(run, capsys):
    """Rows whose settings are unknown are never rewritten under other settings (nor dropped)."""
    track_complexity(run, FAST, progress=False, epochs=[2])
    before = (run.path / COMPLEXITY_FILE).read_text()
    (run.path / SETTINGS_FILE).unlink()
    other = ["--store", str(run.path.parent), "complexity", str(run.path), "--eps", "2", "--checkpoint", "2",
             "--search-seed", "5", "--n-random", "2", "--n-guided", "1", "--estimator", "ET", "--quiet"]
    assert main(other) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: settings:") and "move complexity.csv aside" in err
    assert (run.path / COMPLEXITY_FILE).read_text() == before and not (run.path / SETTINGS_FILE).exists()


def test_storing_rows_never_lowers_the_row_count(run):
    """A writer replaces rows of the same (epoch, eps) only: rows of the same epoch at other eps stay."""
    table = track_complexity(run, FAST, progress=False, epochs=[1, 2])
    counts = [len(table)]
    one = table[(table.epoch == 2) & (table.eps == 1.0)].to_dict("records")
    for rows in (one, [dict(one[0], seconds=9.0)], table.to_dict("records")):
        counts.append(len(tracking.store_rows(run, FAST, rows)))
    assert counts == [4, 4, 4, 4]
    assert read_complexity(run).query("epoch == 2 and eps == 0.25").shape[0] == 1


def test_count_columns_read_as_integers_whatever_the_table_was_written_with(tmp_path):
    """A table that once held a missing value was written with floats (113678.0); it reads, and prints in the
    notebooks, as a fresh one does. Counts with a missing value stay floats."""
    path = tmp_path / COMPLEXITY_FILE
    path.write_text("epoch,eps,alg1_paper_bytes,alg1_paper_bits,edge_paper_bytes,alg1_train_loss\n"
                    "30.0,1.0,113678.0,909424.0,,0.5\n")
    table = read_table(path)
    assert table.epoch.dtype == table.alg1_paper_bytes.dtype == table.alg1_paper_bits.dtype == "int64"
    assert table.edge_paper_bytes.dtype == table.alg1_train_loss.dtype == "float64"
    assert table.alg1_paper_bits.iloc[0] == 909424
