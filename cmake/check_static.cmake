# Run after linking setdiag-agent: it may need glibc's shared objects only.
execute_process(COMMAND readelf -d ${BINARY} OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf -d ${BINARY} failed")
endif()
string(REGEX MATCHALL "Shared library: \\[[^]]*\\]" needed "${dynamic}")
foreach(entry IN LISTS needed)
  string(REGEX REPLACE "Shared library: \\[(.*)\\]" "\\1" lib "${entry}")
  if(NOT lib MATCHES "^(libc|libm|libdl|librt|libpthread|libatomic|ld-linux-x86-64)\\.so")
    message(FATAL_ERROR "${BINARY} needs ${lib}: the static agent must link only glibc shared "
                        "(add the archive in cmake/static_agent.cmake or drop the dependency)")
  endif()
endforeach()
