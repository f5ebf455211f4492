# How setdiag-agent is linked. The agent lives on store servers next to SET
# itself, and its resident memory is part of what we promise (goal: at most
# 15 MiB while watching 200 tills; docs/benchmarks.md, "Agent footprint").
#
# Linked against shared libraries, most of its memory was not its own work
# but the dynamic loader's: 87 shared objects (libpq alone brought Kerberos,
# LDAP and GnuTLS), each with its symbol tables read at start, its relocated
# data made private, and whole 64 KiB windows of code mapped around each
# page touched. Linked statically, with unused sections dropped, the agent
# maps only the code it calls. The protocol is generated for protobuf's lite
# runtime (proto/setdiag/v1/link.proto), so the agent carries no descriptors
# or reflection either.
#
# glibc is linked in too (-static-pie): the agent is one executable with no
# interpreter and no shared library at all, so it starts on every x86-64
# Linux store server, from CentOS 7 (glibc 2.17, kernel 3.10) to Debian 12
# (docs/portability.md). What a static glibc would still load at run time
# is kept out of reach: host names are resolved by c-ares, not NSS
# (agent/sources/resolve.h; gRPC's resolver is pinned to c-ares in agent/main.cc),
# and the agent looks up no users or groups. The linker still warns that
# some functions "require at runtime the shared libraries": they are linked
# in but never called: getaddrinfo by gRPC's native resolver, getservbyname
# and getservbyport_r by c-ares for service names (we pass numeric ports),
# gethostbyname and dlopen by OpenSSL's BIO and engine loader. The
# empty-root test (tests/integration/portable_test.cc) fails if one is.
#
# It stays a position-independent executable, so the kernel still places its
# code at a random address (ASLR matters: the agent parses heartbeats from
# the store's network); static-pie relocates itself at start. Its relative
# relocations are packed (DT_RELR): 9 KiB to read at start instead of
# 900 KiB.
#
# SETDIAG_STATIC_AGENT=OFF links the agent like every other binary (for a
# distribution that insists on shared libraries); everything still works,
# on the build machine's glibc and newer.
option(SETDIAG_STATIC_AGENT "Link setdiag-agent as one static-pie executable, glibc included" ON)

function(setdiag_link_static target)
  pkg_check_modules(SETDIAG_STATIC REQUIRED grpc++ protobuf-lite sqlite3 libssl libcrypto zlib libcares)
  # glibc's own libraries come with -static-pie from libc.a.
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
  # also untangles Abseil's circular references). The shared objects CMake
  # still lists afterwards through the imported targets are dropped by the
  # link launcher (cmake/link_static.sh); the build checks the result below.
  get_property(agent_libraries GLOBAL PROPERTY SETDIAG_AGENT_LIBRARIES)
  set(own ${agent_libraries} setdiag_common setdiag_proto)
  set(own_files)
  foreach(lib IN LISTS own)
    list(APPEND own_files $<TARGET_FILE:${lib}>)
  endforeach()
  add_dependencies(${target} ${own})
  target_link_libraries(${target} PRIVATE -Wl,--start-group ${own_files} ${archives} -Wl,--end-group
    Threads::Threads ${CMAKE_DL_LIBS})
  # Not -static-libstdc++/-static-libgcc: -static-pie links both statically
  # already, and GCC 12 given either next to -static-pie quietly links libc
  # and the loader dynamically again (check_static.cmake would fail).
  target_link_options(${target} PRIVATE -static-pie -Wl,-z,pack-relative-relocs -Wl,--gc-sections)
  set_property(TARGET ${target} PROPERTY RULE_LAUNCH_LINK ${PROJECT_SOURCE_DIR}/cmake/link_static.sh)
endfunction()

# Fails the build if the agent is no longer one self-contained executable:
# an interpreter, a shared library, or a versioned glibc symbol.
function(setdiag_check_static target)
  add_custom_command(TARGET ${target} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -DBINARY=$<TARGET_FILE:${target}>
            -P ${PROJECT_SOURCE_DIR}/cmake/check_static.cmake
    VERBATIM)
endfunction()
