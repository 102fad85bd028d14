# The README's two commands: `make lab` and `make test`. Everything else is a step they share.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
ROOT    ?= /var/lib/workbench
APT_PKGS := runc crun busybox-static skopeo docker-registry nftables chromium tinyproxy strace openssl

.PHONY: setup test lab engine lint bench clean

setup: $(BIN)/.installed
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null); fi

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

test: setup
	$(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check workbench tests bench

engine: setup
	@$(BIN)/workbench engine status >/dev/null 2>&1 || $(BIN)/workbench engine start --detach --root $(ROOT)
	@$(BIN)/workbench image inspect busybox:latest >/dev/null 2>&1 || $(BIN)/workbench image bootstrap busybox

lab: engine
	$(BIN)/jupyter lab --allow-root --notebook-dir=notebooks --ip=127.0.0.1 --no-browser

bench: setup
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
