"""Bad inputs and damaged stores, tried as a careless user would: how many get one clean line.

    python benchmarks/bad_inputs.py                 # this checkout
    python benchmarks/bad_inputs.py --repo DIR      # another checkout (e.g. a git worktree of an old commit)

Every case runs `python -m grok_lib ...` (or `-m grok_lib.paper.reproduce`) in a subprocess, from the
checkout's root, against a scratch store. A case is handled cleanly when the command exits with status 2,
prints no traceback, and the last line of its error output names the argument (or file) at fault. The
script prints one line per case and the count; it changes nothing outside its scratch directory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SMALL = ["--p", "11", "--epochs", "2", "--d-model", "16", "--n-heads", "2", "--d-mlp", "32", "--op", "add"]
FAST = ["--n-random", "2", "--n-guided", "1", "--estimator", "ET", "--quiet"]  # a cheap Algorithm 1


def train(*extra, small=True):
    args = ["train", "--quiet"] + (SMALL if small else []) + list(extra)
    return args


# (name, argv after `python -m grok_lib`, the word the error line must contain, set-up(scratch) -> env)
CASES = [
    ("unknown op", train("--op", "pow"), "op"),
    ("div with a composite modulus", train("--op", "div", "--p", "12"), "p"),
    ("unknown regime", train("--regime", "l1"), "regime"),
    ("negative seed", train("--seed", "-1"), "seed"),
    ("seed 2**63", train("--seed", str(2**63)), "seed"),
    ("seed not a number", train("--seed", "abc"), "seed"),
    ("zero epochs", train("--epochs", "0"), "epochs"),
    ("negative epochs", train("--epochs", "-5"), "epochs"),
    ("modulus 1", train("--p", "1"), "p"),
    ("modulus too large to fit", train("--p", "1000003"), "p"),
    ("train fraction 0", train("--train-frac", "0"), "train_frac"),
    ("train fraction 1.5", train("--train-frac", "1.5"), "train_frac"),
    ("train fraction nan", train("--train-frac", "nan"), "train_frac"),
    ("learning rate 0", train("--lr", "0"), "lr"),
    ("learning rate nan", train("--lr", "nan"), "lr"),
    ("negative weight decay", train("--weight-decay", "-1"), "weight_decay"),
    ("infinite weight decay", train("--weight-decay", "inf"), "weight_decay"),
    ("negative noise", train("--noise", "-0.1"), "noise"),
    ("beta nan", train("--beta", "nan"), "beta"),
    ("batch size 0", train("--batch-size", "0"), "batch_size"),
    ("zero layers", train("--n-layers", "0"), "n_layers"),
    ("d_model 0", train("--d-model", "0", small=False), "d_model"),
    ("d_model too large to fit", train("--d-model", "4000000", small=False), "d_model"),
    ("heads that do not divide d_model", train("--n-heads", "3"), "n_heads"),
    ("d_mlp 0", train("--d-mlp", "0", small=False), "d_mlp"),
    ("unknown init", train("--init", "xavier"), "init"),
    ("unknown gelu", train("--gelu", "relu"), "gelu"),
    ("LayerNorm eps 0", train("--ln-eps", "0"), "ln_eps"),
    ("LayerNorm eps 2", train("--ln-eps", "2"), "ln_eps"),
    ("unknown positional table", train("--pos-table", "rotary"), "pos_table"),
    ("device tpu", train("--device", "tpu"), "device"),
    ("device cuda without CUDA", train("--device", "cuda"), "device"),
    ("device cuda:7", train("--device", "cuda:7"), "device"),
    ("grid: unknown regime", ["grid", "--regimes", "l1"] + SMALL, "regime"),
    ("grid: negative seed", ["grid", "--seeds", "-3"] + SMALL, "seed"),
    ("lmn: unknown profile", ["lmn", "{scratch}/lmn", "--profile", "huge"], "profile"),
    ("lmn: output folder is a file", ["lmn", "{scratch}/a_file"], "a_file"),
    ("complexity: no such run", ["complexity", "{scratch}/nothing"], "nothing"),
    ("complexity: run path is a file", ["complexity", "{scratch}/a_file"], "a_file"),
    ("complexity: eps 0", ["complexity", "{run}", "--eps", "0"], "eps"),
    ("complexity: eps -1", ["complexity", "{run}", "--eps", "-1"], "eps"),
    ("complexity: eps nan", ["complexity", "{run}", "--eps", "nan"], "eps"),
    ("complexity: checkpoint not stored", ["complexity", "{run}", "--checkpoint", "999"], "checkpoint"),
    ("complexity: unknown estimator", ["complexity", "{run}", "--estimator", "XX"], "estimator"),
    ("complexity: negative n-random", ["complexity", "{run}", "--n-random", "-1"], "n_random"),
    ("complexity: negative n-guided", ["complexity", "{run}", "--n-guided", "-1"], "n_guided"),
    ("complexity: unknown objective", ["complexity", "{run}", "--objective", "gzip"], "objective"),
    ("complexity: unknown Algorithm 2", ["complexity", "{run}", "--algorithm-2", "golden"], "algorithm_2"),
    ("complexity: zero workers", ["complexity", "{run}", "--workers", "0"], "workers"),
    ("complexity: device tpu", ["complexity", "{run}", "--device", "tpu"], "device"),
    ("complexity: negative search seed", ["complexity", "{run}", "--search-seed", "-1"], "seed"),
    ("complexity: search seed 2**32", ["complexity", "{run}", "--search-seed", str(2**32)], "seed"),
    ("complexity: unknown preset", ["complexity", "{run}", "--preset", "fastest"], "preset"),
    ("complexity: the edge preset is not a tracking search", ["complexity", "{run}", "--preset", "edge"], "how"),
    ("complexity: unknown factor split", ["complexity", "{run}", "--factor-split", "right"], "factor_split"),
    ("complexity: unknown allocation", ["complexity", "{run}", "--allocation", "per-row"], "allocation"),
    ("complexity: negative refine", ["complexity", "{run}", "--preset", "tightest", "--refine", "-2"], "refine"),
    ("complexity: Algorithm 2 sweep-edges (removed)", ["complexity", "{run}", "--algorithm-2", "sweep-edges"],
     "algorithm_2"),
    ("store is a file", ["--store", "{scratch}/a_file", "runs"], "store"),
    ("store path too long", ["--store", "{scratch}/" + "x" * 5000, "runs"], "store"),
    ("GROK_RUNS is a file", ["runs"], "GROK_RUNS", {"GROK_RUNS": "{scratch}/a_file"}),
    ("config.json not JSON", ["complexity", "{broken_json}"], "config.json"),
    ("config.json with a wrong type", ["complexity", "{wrong_type}"], "config.json"),
    ("config.json not UTF-8", ["complexity", "{not_utf8}"], "config.json"),
    ("checkpoint file garbled", ["complexity", "{garbled_checkpoint}"], "safetensors"),
    ("checkpoint holding another epoch", ["complexity", "{wrong_epoch}", "--eps", "1", "--checkpoint", "2", *FAST],
     "epoch_000002"),
    ("checkpoint with one bit flipped", ["complexity", "{bit_flip}", "--eps", "1", "--checkpoint", "2", *FAST],
     "checksum"),
    ("table without its complexity.json", ["complexity", "{no_settings}", "--eps", "2", "--checkpoint", "2",
                                           "--search-seed", "5", *FAST], "settings"),
    ("resume state without optimizer moments", ["--store", "{no_moments_store}", *train()], "resume"),
    ("compute: scheduler file not one", ["compute", "--profile", "ci", "--scheduler", "{scratch}/a_file"], "scheduler"),
    ("compute: export into a file", ["compute", "--profile", "ci", "--export", "{scratch}/a_file/p"], "export"),
    ("reproduce: unknown profile", ["-m", "grok_lib.paper.reproduce", "--profile", "foo"], "profile"),
    ("reproduce: unknown notebook", ["-m", "grok_lib.paper.reproduce", "--profile", "ci", "--only", "x.ipynb"], "only"),
    ("reproduce: GROK_PROFILE unknown", ["-m", "grok_lib.paper.reproduce", "--profile", "auto"], "GROK_PROFILE",
     {"GROK_PROFILE": "huge"}),
    ("reproduce: GROK_FIGURES a file", ["-m", "grok_lib.paper.reproduce", "--profile", "ci", "--only", "02_training.ipynb"],
     "GROK_FIGURES", {"GROK_FIGURES": "{scratch}/a_file"}),
]


def scratch_store(python: str, repo: Path, scratch: Path) -> dict[str, str]:
    """A scratch store with one tiny trained run and damaged copies of it; {name: path}."""
    store = scratch / "store"
    subprocess.run([python, "-m", "grok_lib", "--store", str(store), *train()], cwd=repo, check=True,
                   capture_output=True)
    (run,) = [p for p in store.iterdir() if p.is_dir() and (p / "config.json").exists()]
    paths = {"run": str(run)}
    (scratch / "a_file").write_text("not a folder\n")
    for name, damage in (("broken_json", b"{not json"), ("not_utf8", b"\xff\xfe\x00garbage"),
                         ("wrong_type", None), ("garbled_checkpoint", None)):
        copy = scratch / "damaged" / name / run.name
        shutil.copytree(run, copy)
        if damage is not None:
            (copy / "config.json").write_bytes(damage)
        elif name == "wrong_type":
            config = json.loads((copy / "config.json").read_text())
            config["p"] = "eleven"
            (copy / "config.json").write_text(json.dumps(config))
        else:
            for checkpoint in (copy / "checkpoints").iterdir():
                checkpoint.write_bytes(b"\x00garbage" * 10)
        paths[name] = str(copy)
    subprocess.run([python, "-m", "grok_lib", "--store", str(store), "complexity", str(run), "--eps", "1",
                    "--checkpoint", "2", *FAST], cwd=repo, check=True, capture_output=True)
    for name in ("wrong_epoch", "bit_flip", "no_settings", "no_moments"):
        copy = scratch / "damaged" / name / run.name
        shutil.copytree(run, copy)
        paths[name], paths[f"{name}_store"] = str(copy), str(copy.parent)
    damaged = {name: Path(paths[name]) for name in ("wrong_epoch", "bit_flip", "no_settings", "no_moments")}
    for name in ("wrong_epoch", "bit_flip"):  # not yet measured: the damaged checkpoint is read
        for table in ("complexity.csv", "complexity.json"):
            (damaged[name] / table).unlink()
    last = damaged["wrong_epoch"] / "checkpoints" / "epoch_000002.safetensors"
    last.write_bytes((damaged["wrong_epoch"] / "checkpoints" / "epoch_000001.safetensors").read_bytes())
    flipped = bytearray((damaged["bit_flip"] / "checkpoints" / "epoch_000002.safetensors").read_bytes())
    flipped[-5] ^= 0x10  # a bit of the weights' last bytes
    (damaged["bit_flip"] / "checkpoints" / "epoch_000002.safetensors").write_bytes(bytes(flipped))
    (damaged["no_settings"] / "complexity.json").unlink()
    # an interrupted run (resume state at epoch 1) whose resume state lost its optimizer tensors
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(damaged["no_moments"] / "resume.safetensors"))
    save_file({k: v for k, v in tensors.items() if not k.startswith("optim/")},
              str(damaged["no_moments"] / "resume.safetensors"), metadata={"epoch": "1"})
    return paths


def run_case(python: str, repo: Path, scratch: Path, paths: dict, case) -> tuple[bool, str]:
    name, argv, word, *rest = case
    env = dict(os.environ, GROK_RUNS=str(scratch / "store"), PYTHONUNBUFFERED="1")
    env.pop("GROK_PROFILE", None)
    fill = dict(paths, scratch=str(scratch))
    for key, value in (rest[0] if rest else {}).items():
        env[key] = value.format(**fill)
    argv = [a.format(**fill) for a in argv]
    command = [python] + (argv if argv[0] == "-m" else ["-m", "grok_lib", *argv])
    try:
        done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return False, "timed out after 300 s"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    clean = done.returncode == 2 and "Traceback" not in done.stderr and word.lower() in last.lower()
    return clean, f"rc {done.returncode}: {last[:150]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        paths = scratch_store(args.python, args.repo, scratch)
        clean = 0
        for case in CASES:
            ok, detail = run_case(args.python, args.repo, scratch, paths, case)
            clean += ok
            print(f"{'ok  ' if ok else 'FAIL'} {case[0]:40s} {detail}", flush=True)
    print(f"{clean}/{len(CASES)} bad inputs handled cleanly (one line naming the argument, exit 2) in {args.repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
