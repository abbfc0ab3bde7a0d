#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end test of the convgrad command-line program: exit codes, output lines, dump files.
# Usage: cli_test.sh PATH/TO/convgrad SHARED_DIR   (SHARED_DIR holds bench/layers-cpu.csv)
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PATH/TO/convgrad SHARED_DIR" >&2
  exit 2
fi
convgrad=$1
shared=$2
layers=$shared/bench/layers-cpu.csv
[[ -x $convgrad ]] || { echo "not executable: $convgrad" >&2; exit 2; }
[[ -f $layers ]] || { echo "missing: $layers" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
passes=0

pass() { passes=$((passes + 1)); echo "ok   $1"; }
fail() {
  failures=$((failures + 1))
  echo "FAIL $1" >&2
  if [[ -f $work/out ]]; then sed 's/^/     | /' "$work/out" >&2; fi
}

# Runs convgrad with stdout and stderr in $work/out; sets $rc (set -e must not stop the script).
run_cli() {
  rc=0
  "$convgrad" "$@" >"$work/out" 2>&1 || rc=$?
}

expect_rc() {  # expect_rc WANT NAME
  if [[ $rc -eq $1 ]]; then pass "$2 (exit $rc)"; else fail "$2: exit $rc, want $1"; fi
}

expect_line() {  # expect_line EXTENDED_REGEX NAME
  if grep -Eq -- "$1" "$work/out"; then pass "$2"; else fail "$2: no line matches /$1/"; fi
}

# --- run ------------------------------------------------------------------------------------------
run_cli run --seed 1
expect_rc 0 "run with the default problem"
expect_line '^problem +mb8ic32ih28oc64oh28kh3ph1$' "run prints the default problem"
for direction in fprop dgrad wgrad; do
  expect_line "^$direction +cpu\\.$direction\\..* PASS$" "run: $direction line with kernel and PASS"
done
expect_line '^padding +top 1, left 1, bottom 1, right 1; output 28 x 28' "run prints the padding"
expect_line '^seed +1 ' "run prints the seed"

cp "$work/out" "$work/first"
run_cli run --seed 1 --repeat 1
if diff <(grep -E '^(y|dx|dw|db) ' "$work/first") <(grep -E '^(y|dx|dw|db) ' "$work/out") \
    >/dev/null; then
  pass "run --seed reproduces the gradient summaries"
else
  fail "run --seed 1 twice gave different gradient summaries"
fi

run_cli run mb1ic8ih9oc8kh3ph1 --dtype f16 --repeat 1
expect_rc 0 "run --dtype f16"
expect_line '^data type +f16' "run --dtype f16 prints the data type"
run_cli run mb1ic8ih9oc8kh3ph1 --dtype bf16 --repeat 1
expect_rc 0 "run --dtype bf16"

run_cli --threads 1 run --layers "$layers" --layer mobilenetv2_depthwise_s2 --repeat 1
expect_rc 0 "run --layers --layer"
expect_line '^layer +mobilenetv2_depthwise_s2 ' "run --layer prints the layer name"

# --- run --dump -----------------------------------------------------------------------------------
# Grouped, strided, non-square, with a rectangular kernel, so that no two axes can be confused.
dump_problem=g2mb2ic4ih7iw9oc6kh3kw2sh2ph1
run_cli run "$dump_problem" --dump "$work/dump/sub" --seed 5 --repeat 1
expect_rc 0 "run --dump (folder created with its parents)"
declare -A shapes=(
  [x]="2 7 9 4" [dx]="2 7 9 4" [w]="6 3 2 2" [dw]="6 3 2 2"
  [y]="2 4 5 6" [dy]="2 4 5 6" [b]="6" [db]="6")
for name in "${!shapes[@]}"; do
  [[ -f $work/dump/sub/$name.npy ]] || fail "run --dump: $name.npy missing"
done
[[ -f $work/dump/sub/problem.json ]] || fail "run --dump: problem.json missing"

if command -v python3 >/dev/null 2>&1; then
  # The standard library suffices to read .npy headers and to recompute y and dx from the dumped
  # inputs, which checks the documented layouts end to end.
  if python3 - "$work/dump/sub" >"$work/out" 2>&1 <<'EOF'; then
import ast, json, math, struct, sys

folder = sys.argv[1]
want = {"x": (2, 7, 9, 4), "dx": (2, 7, 9, 4), "w": (6, 3, 2, 2), "dw": (6, 3, 2, 2),
        "y": (2, 4, 5, 6), "dy": (2, 4, 5, 6), "b": (6,), "db": (6,)}

def load(name):
    with open(f"{folder}/{name}.npy", "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", name + ": not an npy file"
    start = 10 if data[6] == 1 else 12  # format 1.0 stores the header length in 2 bytes, 2.0 in 4
    size = int.from_bytes(data[8:start], "little")
    header = ast.literal_eval(data[start:start + size].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], f"{name}: {header}"
    assert tuple(header["shape"]) == want[name], f"{name}: shape {header['shape']}"
    body = data[start + size:]
    count = math.prod(want[name])
    assert len(body) == 4 * count, f"{name}: {len(body)} data bytes for {count} floats"
    return struct.unpack(f"<{count}f", body)

t = {name: load(name) for name in want}
j = json.load(open(f"{folder}/problem.json"))
assert j["problem"] == "g2mb2ic4ih7iw9oc6oh4ow5kh3kw2sh2sw2ph1pw1", j["problem"]
assert (j["n"], j["h"], j["w"], j["c"], j["k"], j["r"], j["s"], j["p"], j["q"]) == \
    (2, 7, 9, 4, 6, 3, 2, 4, 5), j
assert j["groups"] == 2 and j["stride_h"] == 2 and j["seed"] == 5 and j["dtype"] == "f32", j
assert j["backend"] == "cpu", j
assert all(-1 <= v <= 1 for v in t["x"]), "inputs must be uniform in [-1, 1]"

N, H, W, C, K, R, S, P, Q = 2, 7, 9, 4, 6, 3, 2, 4, 5
G, SH, SW = 2, 2, 2
PT, PL = j["pad_top"], j["pad_left"]
CG, KG = C // G, K // G
x = lambda n, h, w, c: t["x"][((n * H + h) * W + w) * C + c]
wt = lambda k, r, s, c: t["w"][((k * R + r) * S + s) * CG + c]
dy = lambda n, p, q, k: t["dy"][((n * P + p) * Q + q) * K + k]
y_ref = [0.0] * (N * P * Q * K)
dx_ref = [0.0] * (N * H * W * C)
for n in range(N):
    for p in range(P):
        for q in range(Q):
            for k in range(K):
                g = k // KG
                acc = t["b"][k]
                for r in range(R):
                    for s in range(S):
                        h, w = p * SH - PT + r, q * SW - PL + s
                        if 0 <= h < H and 0 <= w < W:
                            for c in range(CG):
                                acc += x(n, h, w, g * CG + c) * wt(k, r, s, c)
                                dx_ref[((n * H + h) * W + w) * C + g * CG + c] += \
                                    dy(n, p, q, k) * wt(k, r, s, c)
                y_ref[((n * P + p) * Q + q) * K + k] = acc

def rel(got, ref):
    return max(abs(a - b) for a, b in zip(got, ref)) / max(abs(b) for b in ref)

assert rel(t["y"], y_ref) < 1e-5, f"y differs from a plain recomputation: {rel(t['y'], y_ref)}"
assert rel(t["dx"], dx_ref) < 1e-5, f"dx differs from a plain recomputation: {rel(t['dx'], dx_ref)}"
print("shapes, problem.json, y and dx check out")
EOF
    pass "run --dump: npy headers, shapes, problem.json, y and dx recomputed in python"
  else
    fail "run --dump: python check of the dumped files"
  fi
else
  # Without python3: a format 1.0 header is 10 bytes plus the length stored at bytes 8-9, and the
  # data is 4 bytes per element.
  for name in "${!shapes[@]}"; do
    file=$work/dump/sub/$name.npy
    header=$(od -An -tu2 -j8 -N2 "$file" | tr -d ' ')
    count=1
    for d in ${shapes[$name]}; do count=$((count * d)); done
    size=$(wc -c <"$file")
    if [[ $size -eq $((10 + header + 4 * count)) ]]; then
      pass "run --dump: $name.npy holds ${shapes[$name]// /x} floats"
    else
      fail "run --dump: $name.npy is $size bytes, want $((10 + header + 4 * count))"
    fi
  done
fi

# --- usage errors ---------------------------------------------------------------------------------
run_cli run mb2ic3ih5oc4kh3sh0
expect_rc 2 "run with a bad problem string"
expect_line 'sh = 0' "the bad problem's message names the parameter"
run_cli run mb2ic3ih5oc4kh3xy1
expect_rc 2 "run with an unknown field"
expect_line 'xy' "the unknown field is named"
run_cli run g3mb1ic4ih5oc6kh3
expect_rc 2 "run with groups that do not divide the channels"
expect_line 'groups' "the groups error names the parameter"
run_cli run --backend nosuch
expect_rc 2 "run --backend nosuch"
run_cli run --dtype f64
expect_rc 2 "run --dtype f64"
run_cli run --layers "$layers" --layer nosuch
expect_rc 2 "run --layer with a name not in the file"
run_cli check
expect_rc 2 "check without problems"
run_cli frobnicate
expect_rc 2 "an unknown subcommand"

# --- check ----------------------------------------------------------------------------------------
run_cli check g2mb2ic8ih9oc8kh3sh2ph1 mb1ic3ih7oc5kh2dh1
expect_rc 0 "check two problems"
expect_line '^2 passed, 0 failed$' "check prints '2 passed, 0 failed'"
expect_line '^g2mb2ic8ih9oc8oh5kh3sh2ph1 .*fprop .*dgrad .*wgrad .*PASS' \
  "check: one line per problem"
if [[ $(tail -n1 "$work/out") == "2 passed, 0 failed" ]]; then
  pass "check: the summary is the last line"
else
  fail "check: the summary is not the last line"
fi

# A limit below every layer of the shared file: layers are cut to batch 1, the rest skipped.
run_cli check --layers "$layers" --max-macs 1e7 --dtype bf16
expect_rc 0 "check --layers with a small --max-macs"
expect_line '^resnet50_conv1 .*SKIPPED \(too large for the reference' "check: a layer is skipped"
expect_line '^[0-9]+ passed, 0 failed, [1-9][0-9]* skipped$' "check counts the skipped layers"

# --- list -----------------------------------------------------------------------------------------
run_cli list
expect_rc 0 "list"
expect_line '^ref +available' "list: ref is available"
expect_line '^cpu +available' "list: cpu is available"
expect_line 'cpu\.dgrad\.' "list: cpu kernels are listed"

# --- bench (a smoke run: it is a program, never a timed test) -------------------------------------
run_cli bench mb2ic8ih10oc16kh3ph1 --reps 2 --warmup 0 --gap-ms 0 --json "$work/bench.json"
expect_rc 0 "bench on a tiny problem"
if grep -q '"schema": "convgrad-bench/1"' "$work/bench.json" 2>/dev/null; then
  pass "bench --json writes the report"
else
  fail "bench --json writes the report"
fi

# The GPU bench's refusals. On a machine where the cuda backend can run, the second would bench.
run_cli bench mb2ic8ih10oc16kh3ph1 --baseline cudnn --reps 1 --warmup 0
expect_rc 2 "bench --baseline cudnn on the cpu backend is a usage error"
expect_line 'baseline cudnn needs --backend cuda' "bench says that cudnn needs --backend cuda"
run_cli bench mb2ic8ih10oc16kh3ph1 --dtype bf16 --reps 1 --warmup 0
expect_rc 2 "bench --dtype bf16 on the cpu backend is a usage error"
expect_line 'CPU bench is float32 only' "bench says that the CPU bench is float32 only"
run_cli list
if grep -Eq '^cuda +available' "$work/out"; then
  echo "skip bench --backend cuda without a device: this machine has one"
else
  run_cli bench mb2ic8ih10oc16kh3ph1 --backend cuda --baseline cudnn --dtype bf16 --reps 1
  expect_rc 2 "bench --backend cuda --baseline cudnn without a usable GPU is a usage error"
  # Which reason depends on the build: no CUDA backend, no cuDNN, or no device.
  expect_line '^convgrad bench: (--backend cuda: (no CUDA device|this build has no CUDA)|--baseline cudnn: this build has no cuDNN)' \
    "bench --backend cuda says why it cannot run"
fi

run_cli --help
expect_rc 0 "--help"
run_cli run --help
expect_line 'mb8ic32ih28oc64oh28kh3ph1' "run --help states the default problem"

echo "cli_test: $passes passed, $failures failed"
[[ $failures -eq 0 ]]
