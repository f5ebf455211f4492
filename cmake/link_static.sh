#!/bin/sh
# Link launcher for the portable setdiag-agent (cmake/static_agent.cmake).
# CMake's imported targets (OpenSSL::SSL, the Abseil and gRPC pkg-config
# targets) name their shared objects by full path, and the agent's libraries
# carry them as usage requirements for the dynamically linked tests. In a
# -static-pie link a shared object is an error, and every symbol they would
# give already comes from the archives listed in the link group, so those
# paths are dropped here; everything else is passed on unchanged.
for arg in "$@"; do
  shift
  case "$arg" in
    /*.so | /*.so.*) continue ;;
  esac
  set -- "$@" "$arg"
done
exec "$@"
