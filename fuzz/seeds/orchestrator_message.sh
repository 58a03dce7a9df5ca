#!/bin/bash
# Writes the seeds of fuzz/corpus/orchestrator_message (run from anywhere in
# the checkout: fuzz/seeds/orchestrator_message.sh fuzz/corpus/orchestrator_message):
# sessions as the orchestrator speaks them to an agent, each message encoded
# by protoc from text format and framed by a 2-byte little-endian length.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
out=${1:-.}
enc() { protoc --encode=gyre.v1.OrchestratorMessage -I "$root/proto" -I /usr/include "$root/proto/gyre/v1/agent_service.proto"; }
frame() {  # text-format messages, one per argument
  for m in "$@"; do
    printf '%s' "$m" | enc > /tmp/om_msg.bin
    python3 -c 'import sys,struct; d=open("/tmp/om_msg.bin","rb").read(); sys.stdout.buffer.write(struct.pack("<H",len(d))+d)'
  done
}
reg='registered { agent: "agents/fuzz-agent" heartbeat_interval { seconds: 5 } lease_timeout { seconds: 30 } }'
ref() { echo "ref { execution: \"executions/0001\" task_id: \"$1\" attempt: $2 }"; }
frame "$reg" > "$out/registered-only"
frame "$reg" "assignment { tasks { $(ref a 1) builtin { kind: NOOP } } tasks { $(ref b 1) builtin { kind: SLEEP duration { seconds: 2 } } } }" \
  "result_ack { through_sequence: 1 }" "cancel { $(ref b 1) grace { seconds: 10 } }" \
  "result_ack { through_sequence: 2 }" > "$out/builtins-ack-cancel"
frame "$reg" "assignment { tasks { $(ref p 1) command: \"echo\" command: \"hi\" env { key: \"K\" value: \"v\" } timeout { seconds: 60 } resources { cpu: 1 memory_bytes: 1048576 } } tasks { $(ref s 2) shell: true command: \"echo \$K\" evaluator: true } }" \
  "result_ack { through_sequence: 2 }" > "$out/process-tasks"
frame "$reg" "cancel { $(ref early 1) grace { seconds: 10 } }" \
  "assignment { tasks { $(ref early 1) builtin { kind: SLEEP duration { seconds: 60 } } } }" > "$out/cancel-before-assignment"
frame "$reg" "assignment { tasks { $(ref a 1) builtin { kind: NOOP } } }" \
  "shutdown { reason: \"orchestrator stopping\" }" \
  "assignment { tasks { $(ref after 1) builtin { kind: NOOP } } }" > "$out/shutdown"
