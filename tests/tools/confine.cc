// setdiag-test-confine: runs a command the way a store server we cannot
// boot here would, for the portable-agent tests (tests/integration/portable_test.cc).
//
//   setdiag-test-confine [--root DIR] [--kernel-3.10] -- COMMAND [ARGS...]
//
// --root DIR      chroot into DIR first (an empty root holding only what the
//                 test put there). As root this is a plain chroot; otherwise
//                 a new user and mount namespace provides the right to.
// --kernel-3.10   install a seccomp filter (libseccomp) that answers ENOSYS
//                 for every x86-64 system call added after Linux 3.10, as
//                 CentOS 7's kernel does, and make uname() report an old
//                 release (personality UNAME26: "2.6.x"), then exec the
//                 command. Both are inherited by everything it starts.
//
// Exit code: the command's (exec replaces this process), or 125 when the
// confinement itself could not be set up.

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

// x86-64 system calls newer than Linux 3.10 (June 2013), with the release
// that added each. 3.10's last one is finit_module (313, Linux 3.8).
struct Newer {
  int nr;
  const char* name;
  const char* since;
};
constexpr Newer kAfter310[] = {
    {314, "sched_setattr", "3.14"},
    {315, "sched_getattr", "3.14"},
    {316, "renameat2", "3.15"},
    {317, "seccomp", "3.17"},
    {318, "getrandom", "3.17"},
    {319, "memfd_create", "3.17"},
    {320, "kexec_file_load", "3.17"},
    {321, "bpf", "3.18"},
    {322, "execveat", "3.19"},
    {323, "userfaultfd", "4.3"},
    {324, "membarrier", "4.3"},
    {325, "mlock2", "4.4"},
    {326, "copy_file_range", "4.5"},
    {327, "preadv2", "4.6"},
    {328, "pwritev2", "4.6"},
    {329, "pkey_mprotect", "4.9"},
    {330, "pkey_alloc", "4.9"},
    {331, "pkey_free", "4.9"},
    {332, "statx", "4.11"},
    {333, "io_pgetevents", "4.18"},
    {334, "rseq", "4.18"},
    // 335-423 are unused on x86-64 (the numbers shared with 32-bit start at 424).
    {424, "pidfd_send_signal", "5.1"},
    {425, "io_uring_setup", "5.1"},
    {426, "io_uring_enter", "5.1"},
    {427, "io_uring_register", "5.1"},
    {428, "open_tree", "5.2"},
    {429, "move_mount", "5.2"},
    {430, "fsopen", "5.2"},
    {431, "fsconfig", "5.2"},
    {432, "fsmount", "5.2"},
    {433, "fspick", "5.2"},
    {434, "pidfd_open", "5.3"},
    {435, "clone3", "5.3"},
    {436, "close_range", "5.9"},
    {437, "openat2", "5.6"},
    {438, "pidfd_getfd", "5.6"},
    {439, "faccessat2", "5.8"},
    {440, "process_madvise", "5.10"},
    {441, "epoll_pwait2", "5.11"},
    {442, "mount_setattr", "5.12"},
    {443, "quotactl_fd", "5.14"},
    {444, "landlock_create_ruleset", "5.13"},
    {445, "landlock_add_rule", "5.13"},
    {446, "landlock_restrict_self", "5.13"},
    {447, "memfd_secret", "5.14"},
    {448, "process_mrelease", "5.15"},
    {449, "futex_waitv", "5.16"},
    {450, "set_mempolicy_home_node", "5.17"},
    {451, "cachestat", "6.5"},
    {452, "fchmodat2", "6.6"},
    {453, "map_shadow_stack", "6.6"},
    {454, "futex_wake", "6.7"},
    {455, "futex_wait", "6.7"},
    {456, "futex_requeue", "6.7"},
    {457, "statmount", "6.8"},
    {458, "listmount", "6.8"},
    {459, "lsm_get_self_attr", "6.8"},
    {460, "lsm_set_self_attr", "6.8"},
    {461, "lsm_list_modules", "6.8"},
    {462, "mseal", "6.10"},
};

int Fail(const std::string& what) {
  std::fprintf(stderr, "setdiag-test-confine: %s\n", what.c_str());
  return 125;
}

bool WriteProc(const char* path, const std::string& text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

int InstallKernel310Filter() {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr) return Fail("seccomp_init failed");
  for (const Newer& n : kAfter310) {
    // Numbers, not names: the list is about this architecture's table, and
    // a libseccomp older than a call would not know its name.
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), n.nr, 0);
    if (rc != 0) {
      seccomp_release(ctx);
      return Fail(std::string("seccomp_rule_add(") + n.name + "): " + std::strerror(-rc));
    }
  }
  int rc = seccomp_load(ctx);  // sets no_new_privs first
  seccomp_release(ctx);
  if (rc != 0) return Fail(std::string("seccomp_load: ") + std::strerror(-rc));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root;
  bool kernel310 = false;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--root" && i + 1 < argc) {
      root = argv[++i];
    } else if (a == "--kernel-3.10") {
      kernel310 = true;
    } else if (a == "--help") {
      std::printf(
          "usage: setdiag-test-confine [--root DIR] [--kernel-3.10] -- COMMAND [ARGS...]\n");
      return 0;
    } else {
      return Fail("unknown option " + a + " (see --help)");
    }
  }
  if (i >= argc) return Fail("no command given (see --help)");

  if (!root.empty()) {
    if (geteuid() != 0) {
      uid_t uid = geteuid();
      gid_t gid = getegid();
      if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
        return Fail(std::string("unshare(user, mount): ") + std::strerror(errno));
      WriteProc("/proc/self/setgroups", "deny");
      if (!WriteProc("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") ||
          !WriteProc("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
        return Fail("could not map the user into the new namespace");
    }
    if (chroot(root.c_str()) != 0) return Fail("chroot " + root + ": " + std::strerror(errno));
    if (chdir("/") != 0) return Fail(std::string("chdir /: ") + std::strerror(errno));
  }
  if (kernel310) {
    // An old kernel also says it is old: libraries choose their fallbacks
    // by uname() too (OpenSSL reads /dev/urandom when getrandom is missing
    // only on kernels older than 4.8). UNAME26 makes uname() report a 2.6
    // release, the closest to 3.10 the kernel offers; it is kept across exec.
    if (personality(static_cast<unsigned long>(PER_LINUX) | static_cast<unsigned long>(UNAME26)) ==
        -1)
      return Fail(std::string("personality(UNAME26): ") + std::strerror(errno));
    if (int rc = InstallKernel310Filter(); rc != 0) return rc;
  }
  execv(argv[i], argv + i);
  return Fail(std::string("exec ") + argv[i] + ": " + std::strerror(errno));
}
