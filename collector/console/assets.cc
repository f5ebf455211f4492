#include "collector/console/assets.h"

#include "common/files.h"
#include "common/strings.h"

namespace setdiag::collector::console {

std::string_view AssetContent(std::string_view name) {
  for (size_t i = 0; i < kEmbeddedAssetCount; ++i)
    if (kEmbeddedAssets[i].name == name) return kEmbeddedAssets[i].content;
  return {};
}

const std::vector<StaticFile>& StaticFiles() {
  static const std::vector<StaticFile> files = [] {
    std::vector<StaticFile> out;
    for (size_t i = 0; i < kEmbeddedAssetCount; ++i) {
      std::string_view name = kEmbeddedAssets[i].name;
      if (!name.starts_with("static/")) continue;
      name.remove_prefix(7);
      const auto dot = name.rfind('.');
      const std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot);
      StaticFile f;
      f.served_name =
          Cat(name.substr(0, dot), ".", Sha256Hex(kEmbeddedAssets[i].content).substr(0, 8), ext);
      f.content = kEmbeddedAssets[i].content;
      f.content_type = ext == ".js"    ? "text/javascript; charset=utf-8"
                       : ext == ".css" ? "text/css; charset=utf-8"
                       : ext == ".svg" ? "image/svg+xml"
                                       : "application/octet-stream";
      out.push_back(std::move(f));
    }
    return out;
  }();
  return files;
}

std::string StaticUrl(std::string_view name) {
  const auto dot = name.rfind('.');
  const std::string prefix = Cat(name.substr(0, dot), ".");
  for (const StaticFile& f : StaticFiles()) {
    if (f.served_name.starts_with(prefix) &&
        f.served_name.size() == prefix.size() + 8 + (name.size() - dot))
      return Cat("/console/static/", f.served_name);
  }
  return Cat("/console/static/", name);
}

}  // namespace setdiag::collector::console
