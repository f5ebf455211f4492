# Run after linking setdiag-agent: the portable agent must be a static PIE
# with no interpreter, no shared library and no versioned symbol to bind
# (docs/portability.md). A new dependency linked without its archive, or
# -static-pie lost from the link, fails the build here.
execute_process(COMMAND readelf -W -h -l -d --dyn-syms ${BINARY}
                OUTPUT_VARIABLE elf RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf ${BINARY} failed: ${err}")
endif()
set(problems)
if(NOT elf MATCHES "Type:[ \t]+DYN")
  list(APPEND problems "not a position-independent executable (ELF type is not DYN)")
endif()
if(elf MATCHES "\n[ \t]*INTERP[ \t]")
  list(APPEND problems "has a program interpreter (PT_INTERP): it needs a dynamic loader")
endif()
string(REGEX MATCHALL "Shared library: \\[[^]]*\\]" needed "${elf}")
foreach(entry IN LISTS needed)
  list(APPEND problems "needs ${entry}")
endforeach()
string(REGEX MATCHALL "@+GLIBC[A-Z_]*[0-9.]+" versions "${elf}")
list(REMOVE_DUPLICATES versions)
foreach(v IN LISTS versions)
  list(APPEND problems "binds the versioned symbol ${v}")
endforeach()
if(problems)
  list(JOIN problems "\n  " text)
  message(FATAL_ERROR "${BINARY} is not the portable agent:\n  ${text}\n"
                      "(link the new dependency's archive in cmake/static_agent.cmake, or drop it)")
endif()
