// Fuzz target: what the support console reads from a browser before any
// page is made (collector/console/render.h): the form body of every POST,
// the Cookie header, and the "back" address a form names.
//
// The input is split at the first two NUL bytes into a form body, a cookie
// header and a back address. Oracles beyond the sanitizers:
// - ParseForm: every field of the body comes back (one per '&'-separated
//   non-empty part), and encoding the parsed fields again and parsing that
//   gives the same fields (no byte is lost or invented);
// - CookieValue: the value found is a substring of the header and holds no
//   ';' (a cookie never takes its neighbour's value);
// - SafeBack: the address is either returned unchanged or replaced by the
//   queue, and what comes out always starts with "/console/" and holds no
//   "//", backslash, CR or LF (no open redirect, no header splitting).

#include <cstdint>
#include <string>
#include <string_view>

#include "collector/console/pages.h"
#include "collector/console/render.h"
#include "common/url.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace setdiag::collector::console;
  using setdiag::fuzz::Fail;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t a = in.find('\0');
  const std::string_view body = in.substr(0, a);
  std::string_view rest = a == std::string_view::npos ? std::string_view() : in.substr(a + 1);
  const size_t b = rest.find('\0');
  const std::string_view cookie = rest.substr(0, b);
  const std::string back(b == std::string_view::npos ? std::string_view() : rest.substr(b + 1));

  auto form = ParseForm(body);
  size_t parts = 0;
  for (size_t i = 0; i <= body.size();) {
    size_t j = body.find('&', i);
    if (j == std::string_view::npos) j = body.size();
    if (j > i) ++parts;
    i = j + 1;
  }
  if (form.size() != parts) Fail("ParseForm lost or invented a field", body);
  std::string again;
  for (const auto& [k, v] : form)
    again += (again.empty() ? "" : "&") + setdiag::UrlEncode(k) + "=" + setdiag::UrlEncode(v);
  auto reparsed = ParseForm(again);
  if (reparsed != form) Fail("ParseForm of the re-encoded fields differs", body);

  for (const char* name : {"setdiag_session", "setdiag_lang", "a"}) {
    const std::string value = CookieValue(cookie, name);
    if (!value.empty() && cookie.find(value) == std::string_view::npos)
      Fail("CookieValue invented a value", cookie);
    if (value.find(';') != std::string::npos) Fail("CookieValue crossed a ';'", cookie);
  }

  const std::string safe = SafeBack(back);
  if (safe != back && safe != "/console/queue") Fail("SafeBack changed the address", back);
  if (!safe.starts_with("/console/") || safe.find("//") != std::string::npos ||
      safe.find('\\') != std::string::npos || safe.find('\r') != std::string::npos ||
      safe.find('\n') != std::string::npos)
    Fail("SafeBack let an address through that leaves the console", back);
  return 0;
}
