#!/usr/bin/env bash
# Regenerates the Python code for proto/dcguard/v1 with a pinned generator.
# The version is pinned because the generated code names the oldest protobuf
# runtime it accepts, and that runtime must still install on Python 3.9.
# Usage: bash proto/generate.sh        (CI runs it and fails on any diff)
set -euo pipefail
cd "$(dirname "$0")/.."
GRPCIO_TOOLS=1.75.1
tools=.cache/grpcio-tools-$GRPCIO_TOOLS
if [ ! -x "$tools/bin/python" ]; then
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS"
fi
rm -f proto/dcguard/v1/*_pb2*.py proto/dcguard/v1/*_pb2*.pyi
"$tools/bin/python" -m grpc_tools.protoc -Iproto \
    --python_out=proto --pyi_out=proto --grpc_python_out=proto \
    proto/dcguard/v1/*.proto
