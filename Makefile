# The two commands of the README:  make reproduce  (main job)  and  make test  (test suite).
# Each creates or refreshes .venv itself; nothing else needs installing by hand.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel that lies on this disk; on a GPU machine pass TORCH_SPEC='torch>=2.4' (or keep its torch).
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: reproduce test test-slow lab docs clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[notebooks,dev]"
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name grok-complexity --display-name "grok-complexity" >/dev/null
	touch $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m grok_lib.paper.reproduce --profile auto

test: $(STAMP)
	$(BIN)/python -m pytest -m "not heavy"

# the checks of over a minute each (a Binder install, cold and warm reproductions); CI runs them after make test
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m heavy

# as root (containers, CI machines) JupyterLab refuses to start without --allow-root
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# the documentation site (mkdocs.yml, docs/) into build/site/: strict (a broken link or reference fails it),
# and it renders offline; open build/site/index.html
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean-venv:
	rm -rf $(VENV)
