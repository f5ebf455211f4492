#pragma once
// What the two config-reader targets share: the input written to a file in
// the scratch directory (both readers take a path: LoadAgentConfig,
// LoadCollectorConfig; ConfigReader::Parse(text) exists but would skip the
// file reading both binaries do), and the guard against inputs that point
// the reader at device files.

#include <fstream>
#include <string>
#include <string_view>

#include "fuzz_util.h"

namespace setdiag::fuzz {

// A config names other files that the reader opens and reads whole
// (collector.token_file, collector.ca_file, grpc.tls_*_file, secret
// files...). /dev/zero or /dev/stdin there would hang the fuzzer on a read
// that never ends; that is the operator's own file, not a parser bug, so
// inputs that mention device or kernel trees are skipped.
inline bool NamesSpecialFiles(std::string_view text) {
  return text.find("/dev") != std::string_view::npos ||
         text.find("/proc") != std::string_view::npos ||
         text.find("/sys") != std::string_view::npos;
}

inline std::string WriteScratchFile(const std::string& name, std::string_view bytes) {
  std::string path = ScratchDir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) Fail("cannot write the scratch config file");
  return path;
}

}  // namespace setdiag::fuzz
