#pragma once
// The console's files, compiled into the collector (cmake/embed_assets.cmake
// writes them from collector/console/templates/ and static/): Mustache
// templates, the style sheet and the script. Static files are served under
// names that carry a hash of their content (console.3f2a9c1d.js), so a
// browser may keep them forever and still gets a new one after an upgrade.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace setdiag::collector::console {

struct Asset {
  std::string_view name;  // "templates/queue.mustache", "static/console.js"
  std::string_view content;
};
extern const Asset kEmbeddedAssets[];
extern const size_t kEmbeddedAssetCount;

// The asset with this name; empty when there is none.
std::string_view AssetContent(std::string_view name);

// A static file as served: "console.js" -> "console.<8 hex of SHA-256>.js".
struct StaticFile {
  std::string served_name;
  std::string_view content;
  std::string content_type;
};
// Every file of static/, with its versioned name.
const std::vector<StaticFile>& StaticFiles();
// The versioned URL of a static file ("/console/static/console.3f2a9c1d.js").
std::string StaticUrl(std::string_view name);

}  // namespace setdiag::collector::console
