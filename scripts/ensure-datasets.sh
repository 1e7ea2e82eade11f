#!/usr/bin/env bash
# Make sure the image data set the tests, benchmarks and the demo use is installed: Fashion-MNIST
# from Debian's package dataset-fashion-mnist (30 MB, MIT), read from /usr/share/datasets/fashion-mnist/.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/t10k-images-idx3-ubyte.gz" ]; then echo "datasets: Fashion-MNIST in $dir"; exit 0; fi
if command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "datasets: installing Debian's dataset-fashion-mnist"
  $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist; }
  [ -f "$dir/t10k-images-idx3-ubyte.gz" ] && exit 0
fi
echo "datasets: Fashion-MNIST is missing ($dir); install Debian's package dataset-fashion-mnist" >&2
exit 1
