#!/usr/bin/env bash
# The Telegram demo of the README (issue 17): label the whole Telegram news corpus of ../shared/corpora with a
# trained model, summarise stance by month and channel, write the interactive report and a screenshot of it
# taken in headless Chromium (Debian package `chromium`).
#
#   bash scripts/telegram_demo.sh MODEL_DIR [OUT_DIR]
#
# The labelled rows (large, regenerable) go to runs/telegram-labelled/; the summary tables, the HTML report and
# the screenshot go to OUT_DIR (default reports/telegram-demo/).
set -euo pipefail
model=${1:?usage: bash scripts/telegram_demo.sh MODEL_DIR [OUT_DIR]}
out=${2:-reports/telegram-demo}
corpus=${RUSTANCE_CORPORA:-../shared/corpora}/telegram_news/raw
labelled=runs/telegram-labelled
mkdir -p "$out"
# --id-column message_id: ids repeat across channels, so rows also carry their source file (the run reports it)
time rustance predict --model "$model" "$corpus" --id-column message_id --keep-column date --keep-column channel \
    --output "$labelled" --precision bf16
time rustance summarize "$labelled" --by month --by channel --out "$out" --html "$out/report.html" \
    --attribution "Telegram news posts, Aug 2023 – Dec 2024, 24 channels: NKTKLN/telegram-news-classifier, CC BY 4.0 (labels by rustance)"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -n "$browser" ]; then
    "$browser" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2200 \
        --virtual-time-budget=20000 --screenshot="$out/report.png" "file://$(realpath "$out/report.html")"
else
    echo "no Chromium found: skipped the screenshot" >&2
fi
ls -la "$out"
