# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= deep,imaging,text,distributed,dp,dev
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma  := ,

.PHONY: demo test lint security browser install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch==2.13.0 (the deep extra) is the CPU wheel that lies on these machines' disk.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/permed demo --out demo-output

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# Static security scan: medium and high findings fail; every `# nosec` says why inline.
security: $(STAMP)
	$(BIN)/bandit -r src -ll -q

# The service's browser test drives Debian's chromium with Playwright (never `playwright
# install`, which downloads a browser); without root or apt the test skips and says why.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the browser test will skip"

test: lint security browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) demo-output build *.egg-info
