# Set-up and entry points. `make repro` = the main job, `make test` = the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch/torchvision pins this machine's pip serves from local disk (CUDA build; runs on CPU too)
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# mediapipe wants opencv-contrib-python, deepface the -headless one; both install `cv2`.
# We keep the headless build (no libGL needed) by reinstalling it last.
OPENCV ?= opencv-contrib-python-headless==5.0.0.93

.PHONY: setup system repro test test-gpu reliability bench clean-venv device-kit

# chromium + chromium-driver (optional): the report's video plays in a browser (tests/test_report.py), the demo's browser test (tests/serve)
system:
	@command -v ffmpeg >/dev/null && command -v espeak-ng >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq ffmpeg espeak-ng sox >/dev/null; \
	  else echo "install ffmpeg and espeak-ng (e.g. sudo apt-get install ffmpeg espeak-ng)"; exit 1; fi; }
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	    || echo "chromium not installed: the report-playback and demo browser tests will skip"; \
	  else echo "optional: sudo apt-get install chromium chromium-driver (the browser tests skip without it)"; fi; }

$(BIN)/.installed: pyproject.toml
	$(MAKE) system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,distributed]'
	$(BIN)/pip install -q --force-reinstall --no-deps $(OPENCV)
	$(BIN)/emotag fetch-assets
	touch $@

setup: $(BIN)/.installed

repro: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not gpu" -q

test-gpu: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m gpu -q

# bad-input corpus + kill-and-resume trials at full count (tests/reliability/ runs a reduced set in `make test`)
reliability: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/reliability.py

# the wheel folder + helper files the device scripts carry (.whl/, git-ignored); see BENCHMARKS.md "Device kit"
device-kit:
	bash bench/device_kit.sh .whl

clean-venv:
	rm -rf $(VENV)
