import subprocess
import sys

import pytest


def cli(*args, store):
    return subprocess.run([sys.executable, "-m", "grok_lib", "--store", str(store), *args],
                          capture_output=True, text=True)


def test_help_explains_the_commands(tmp_path):
    out = cli("train", "--help", store=tmp_path).stdout
    for word in ["--op", "--regime", "--seed", "--epochs", "weight noise", "spectral entropy", "resumes"]:
        assert word in out


@pytest.mark.parametrize("args, field", [
    (["--op", "pow"], "op"), (["--op", "div", "--p", "21"], "p"), (["--p", "2"], "p"),
    (["--train-frac", "1.2"], "train_frac"), (["--noise", "-1"], "noise"), (["--beta", "-1"], "beta"),
    (["--weight-decay", "-1"], "weight_decay"), (["--lr", "-1"], "lr"), (["--epochs", "0"], "epochs"),
])
def test_bad_input_exits_2_with_one_line_naming_the_field(tmp_path, args, field):
    result = cli("train", *args, store=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {field}:")


def test_train_then_list(tmp_path):
    args = ["--op", "add", "--p", "11", "--train-frac", "0.5", "--d-model", "16", "--n-heads", "2",
            "--d-mlp", "32", "--epochs", "5", "--quiet"]
    result = cli("train", *args, store=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "epoch 5" in result.stdout
    listing = cli("runs", store=tmp_path).stdout
    assert "add-ours-s0" in listing and "5/5" in listing


def test_grid_trains_each_regime_and_seed_as_its_own_run(tmp_path):
    args = ["--op", "add", "--p", "11", "--train-frac", "0.5", "--d-model", "16", "--n-heads", "2",
            "--d-mlp", "32", "--epochs", "3", "--regimes", "none", "ours", "--seeds", "0", "1", "--ensemble"]
    result = cli("grid", *args, store=tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(line.split()[0] for line in cli("runs", store=tmp_path).stdout.splitlines())
    assert [n.rsplit("-", 1)[0] for n in names] == ["add-none-s0", "add-none-s1", "add-ours-s0", "add-ours-s1"]


def test_top_level_help_answers_without_importing_torch():
    """`python -m grok_lib --help` lists every command from the light parser alone (about a second)."""
    code = ("import sys, runpy; sys.argv = ['grok_lib', '--help']\n"
            "try:\n    runpy.run_module('grok_lib', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    from grok_lib.cli import COMMANDS, build_parser
    assert out.strip().endswith("False False")
    assert all(name in out for name in COMMANDS)
    full = build_parser()._subparsers._group_actions[0]
    assert {a.dest: a.help for a in full._choices_actions} == COMMANDS  # one help text per command


def test_package_messages_go_through_logging_and_can_be_turned_down(capsys):
    import logging

    from grok_lib.errors import GrokError
    from grok_lib.log import configure, get

    log = get("grok_lib.paper.notebook")
    configure(stream="stdout")
    log.info("one line")
    assert capsys.readouterr().out == "one line\n"
    logging.getLogger("grok_lib").setLevel(logging.WARNING)  # a notebook or a Dask worker turning it down
    log.info("hidden")
    assert capsys.readouterr().out == ""
    configure()  # the CLI's: stderr
    log.info("to stderr")
    assert capsys.readouterr().err == "to stderr\n"
    with pytest.raises(GrokError, match="stream"):
        configure(stream="tty")
