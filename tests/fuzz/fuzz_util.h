#pragma once
// Helpers shared by the fuzz targets (tests/fuzz/*_fuzz.cc): an oracle
// failure that libFuzzer (and the replay test) reports as a crash, and a
// scratch directory for targets that need files or sockets. Header-only so
// each target stays one source file plus replay_main.cc or libFuzzer's main.

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace setdiag::fuzz {

// An oracle did not hold: prints what and aborts (a "deadly signal" for
// libFuzzer, which then saves the input as crash-<sha1>).
[[noreturn]] inline void Fail(std::string_view what, std::string_view detail = {}) {
  std::fprintf(stderr, "setdiag fuzz oracle failed: %.*s\n", static_cast<int>(what.size()),
               what.data());
  if (!detail.empty()) {
    std::string shown(detail.substr(0, 2000));
    std::fprintf(stderr, "  detail (%zu bytes): ", detail.size());
    for (char c : shown) {
      auto u = static_cast<unsigned char>(c);
      if (u >= 0x20 && u < 0x7f && c != '\\')
        std::fputc(c, stderr);
      else
        std::fprintf(stderr, "\\x%02x", u);
    }
    std::fputc('\n', stderr);
  }
  std::abort();
}

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// One directory per process, made on first use and removed at normal exit
// (not after a crash: then it may hold what helps to debug). In /dev/shm
// when there is one: the tar target fsyncs every archive it writes.
inline const std::string& ScratchDir() {
  struct Dir {
    std::string path;
    Dir() {
      // scripts/fuzz names a parent it removes afterwards: libFuzzer ends
      // a run without static destructors.
      const char* parent = std::getenv("SETDIAG_FUZZ_SCRATCH");
      std::string tmpl =
          std::string(parent && *parent ? parent : "/dev/shm") + "/setdiag-fuzz-XXXXXX";
      if (::mkdtemp(tmpl.data()) == nullptr) {
        tmpl = "/tmp/setdiag-fuzz-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) Fail("mkdtemp failed");
      }
      path = tmpl;
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

// How many times `needle` occurs in `hay` (overlapping).
inline size_t CountOf(std::string_view hay, std::string_view needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace setdiag::fuzz
