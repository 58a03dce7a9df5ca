#!/bin/bash
# Writes the seeds of fuzz/corpus/agent_message (run from anywhere in the
# checkout: fuzz/seeds/agent_message.sh fuzz/corpus/agent_message): sessions of an agent as
# gyre-agent speaks, each message encoded by protoc from text format and
# framed by a 2-byte little-endian length.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
out=${1:-.}
enc() { protoc --encode=gyre.v1.AgentMessage -I "$root/proto" -I /usr/include "$root/proto/gyre/v1/agent_service.proto"; }
frame() {  # text-format messages, one per argument
  for m in "$@"; do
    printf '%s' "$m" | enc > /tmp/am_msg.bin
    python3 -c 'import sys,struct; d=open("/tmp/am_msg.bin","rb").read(); sys.stdout.buffer.write(struct.pack("<H",len(d))+d)'
  done
}
reg='register { agent_id: "fuzz-agent" slots: 4 queues: "default" initial_credit: 4 version: "seed" }'
ref() { echo "ref { execution: \"executions/FUZZ\" task_id: \"$1\" attempt: $2 }"; }
frame "$reg" > "$out/register-only"
frame "$reg" "task_started { $(ref a 1) pid: 42 }" \
  "task_result { $(ref a 1) outcome: ATTEMPT_SUCCEEDED sequence: 1 }" "credit { tasks: 1 }" \
  "task_result { $(ref flaky 1) outcome: ATTEMPT_FAILED exit_code: 1 error: \"boom\" sequence: 2 }" \
  "credit { tasks: 1 }" > "$out/results-and-a-failure"
frame "$reg" "task_result { $(ref flaky 1) outcome: ATTEMPT_SUCCEEDED output_json: \"{\\\"OUT\\\": \\\"x\\\"}\" sequence: 1 }" \
  "task_result { $(ref judge 1) outcome: ATTEMPT_SUCCEEDED output_json: \"{\\\"run\\\": [\\\"b\\\"], \\\"skip\\\": [\\\"c\\\"]}\" sequence: 2 }" \
  "task_results { results { $(ref a 1) outcome: ATTEMPT_SUCCEEDED sequence: 3 } results { $(ref b 1) outcome: ATTEMPT_SUCCEEDED sequence: 4 } }" \
  "credit { tasks: 3 }" > "$out/evaluator-decision"
frame "$reg" "heartbeat { running { execution: \"executions/FUZZ\" task_id: \"a\" attempt: 1 } }" \
  "log_chunk { $(ref a 1) chunk { stream: STDOUT offset: 0 data: \"hello\\n\" } }" \
  "draining { }" > "$out/heartbeat-log-draining"
frame "$reg" "task_result { $(ref a 7) outcome: ATTEMPT_SUCCEEDED sequence: 1 }" \
  "task_result { $(ref a 1) outcome: ATTEMPT_SUCCEEDED sequence: 1 }" \
  "task_result { $(ref a 1) outcome: ATTEMPT_SUCCEEDED sequence: 2 }" > "$out/stale-and-duplicate-results"
