#pragma once
// URLs as the admin API, the CLI and the simulator's control API speak them:
// percent-encoding of path segments and query values, and a request target
// split into its path and query.

#include <map>
#include <string>
#include <string_view>

namespace setdiag {

// Percent-encodes everything but RFC 3986's unreserved characters
// (A-Z a-z 0-9 - . _ ~): safe in a path segment and in a query value.
std::string UrlEncode(std::string_view s);
// Undoes UrlEncode, and reads '+' as a blank (HTML forms); a '%' without two
// hex digits stays as it is.
std::string UrlDecode(std::string_view s);

struct RequestTarget {
  std::string path;                          // not decoded
  std::map<std::string, std::string> query;  // decoded; a key without '=' maps to ""
};
// "/api/v1/events?store=1042&limit=5" -> path and query.
RequestTarget ParseRequestTarget(std::string_view target);

}  // namespace setdiag
