# How setdiag-agent is linked. The agent lives on store servers next to SET
# itself, and its resident memory is part of what we promise (goal: at most
# 15 MiB while watching 200 tills; docs/benchmarks.md, "Agent footprint").
#
# Linked against shared libraries, most of its memory was not its own work
# but the dynamic loader's: 87 shared objects (libpq alone brought Kerberos,
# LDAP and GnuTLS), each with its symbol tables read at start, its relocated
# data made private, and whole 64 KiB windows of code mapped around each
# page touched. Linked statically (glibc stays shared), with unused sections
# dropped, the agent maps only the code it calls. The protocol is generated
# for protobuf's lite runtime (proto/setdiag/v1/link.proto), so the agent
# carries no descriptors or reflection either.
#
# It stays a position-independent executable, so the kernel still places its
# code at a random address (ASLR matters: the agent parses heartbeats from
# the store's network). Its relative relocations are packed (DT_RELR, glibc
# 2.36): 9 KiB to read at start instead of 900 KiB. A position-dependent
# build would save another 0.7-0.9 MiB; we keep the hardening.
#
# SETDIAG_STATIC_AGENT=OFF links the agent like every other binary (for a
# distribution that insists on shared libraries); everything still works.
option(SETDIAG_STATIC_AGENT "Link setdiag-agent statically (glibc stays shared)" ON)

function(setdiag_link_static target)
  pkg_check_modules(SETDIAG_STATIC REQUIRED grpc++ protobuf-lite sqlite3 libssl libcrypto zlib)
  # What glibc provides stays shared.
  set(shared_only dl m rt pthread atomic c)
  set(archives)
  foreach(name IN LISTS SETDIAG_STATIC_STATIC_LIBRARIES)
    if(name IN_LIST shared_only)
      continue()
    endif()
    string(MAKE_C_IDENTIFIER "${name}" id)
    find_library(SETDIAG_STATIC_ARCHIVE_${id} NAMES lib${name}.a NO_CACHE)
    if(NOT SETDIAG_STATIC_ARCHIVE_${id})
      message(FATAL_ERROR "SETDIAG_STATIC_AGENT: lib${name}.a not found (install its -dev package, "
                          "or configure with -DSETDIAG_STATIC_AGENT=OFF)")
    endif()
    list(APPEND archives ${SETDIAG_STATIC_ARCHIVE_${id}})
  endforeach()
  list(REMOVE_DUPLICATES archives)
  # Our own libraries and the archives form one group, placed right after
  # the agent's objects, so every symbol is resolved inside it (the group
  # also untangles Abseil's circular references). The shared libraries
  # CMake still lists afterwards through the imported targets resolve
  # nothing, and --as-needed keeps them out of the binary; the build checks
  # that below.
  set(own setdiag_agent_lib setdiag_common setdiag_proto)
  set(own_files)
  foreach(lib IN LISTS own)
    list(APPEND own_files $<TARGET_FILE:${lib}>)
  endforeach()
  add_dependencies(${target} ${own})
  target_link_libraries(${target} PRIVATE -Wl,--start-group ${own_files} ${archives} -Wl,--end-group
    Threads::Threads ${CMAKE_DL_LIBS})
  target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc
    -Wl,-z,pack-relative-relocs -Wl,--as-needed -Wl,--gc-sections)
endfunction()

# Fails the build if the agent picked up a shared library other than glibc's
# (a new dependency added without its archive here).
function(setdiag_check_static target)
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -DBINARY=$<TARGET_FILE:${target}>
            -P ${PROJECT_SOURCE_DIR}/cmake/check_static.cmake
    VERBATIM)
endfunction()
