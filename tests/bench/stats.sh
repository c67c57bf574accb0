# Sourced by the benchmarks that take the best and the median of their runs.
# best_and_median T...: prints "BEST MEDIAN" of the timings T (integers, ns; the median of an even count is the mean
# of the two middle ones).
best_and_median() {
  printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%d %.1f\n", v[1], NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
