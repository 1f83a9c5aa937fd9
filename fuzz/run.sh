#!/usr/bin/env bash
# Fuzzes every loader of untrusted bytes with cargo-fuzz (libFuzzer, AddressSanitizer, debug
# assertions, nightly Rust): safetensors checkpoints (hetconv's and PyTorch's), CIFAR-10
# batches, IDX files (gzipped too) and image files. Starts from the committed corpus in
# fuzz/corpus/TARGET (new inputs go to a scratch folder, so the corpus only grows by hand); a
# crash leaves its input in fuzz/artifacts/TARGET and fails the script.
#
#   fuzz/run.sh              1,000,000 executions of each target; prints the results table and
#                            writes it to bench-results/fuzz-DATE.md
#   fuzz/run.sh --ci         each target over the committed corpus, then 20,000 executions
#   fuzz/run.sh --runs N     N executions of each target
set -euo pipefail
cd "$(dirname "$0")"

runs=1000000
table=1
case "${1:-}" in
  --ci) runs=20000 table= ;;
  --runs) runs=$2 table= ;;
  "") ;;
  *) echo "usage: fuzz/run.sh [--ci | --runs N]" >&2; exit 2 ;;
esac

command -v cargo-fuzz >/dev/null 2>&1 || {
  echo "fuzz: installing cargo-fuzz (once)"
  cargo install cargo-fuzz --locked --quiet
}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

targets=(checkpoint cifar idx image)
echo "fuzz: building ${targets[*]} (nightly, AddressSanitizer)"
cargo +nightly fuzz build --release --debug-assertions

rows=()
for target in "${targets[@]}"; do
  scratch=$(mktemp -d)
  log=$(mktemp)
  echo "fuzz: $target, $runs executions"
  start=$(date +%s)
  # -rss_limit_mb: a loader that tries to allocate without bound fails here; -timeout: one
  # that hangs does.
  if ! cargo +nightly fuzz run --release --debug-assertions "$target" "$scratch" "corpus/$target" -- \
      -runs="$runs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
  seconds=$(( $(date +%s) - start ))
  done_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
  corpus=$(ls "$scratch" | wc -l)
  rows+=("| $target | $done_runs | $seconds | $cov | $(ls "corpus/$target" | wc -l) + $corpus | 0 |")
  rm -rf "$scratch" "$log"
done

header="| target | executions | seconds | coverage (edges) | corpus (committed + found) | crashes |
|---|---|---|---|---|---|"
printf '%s\n' "$header" "${rows[@]}"
if [ -n "$table" ]; then
  out="../bench-results/fuzz-$(date +%F).md"
  {
    echo "# Fuzzing the loaders, $(date +%F)"
    echo
    echo "\`fuzz/run.sh\` on $(nproc) cores of $(uname -m) ($(rustc +nightly --version)), cargo-fuzz"
    echo "$(cargo fuzz --version | awk '{print $2}'), AddressSanitizer, debug assertions; -rss_limit_mb=2048 -timeout=10."
    echo
    printf '%s\n' "$header" "${rows[@]}"
  } >"$out"
  echo "fuzz: wrote $out"
fi
