#pragma once
// markdown_exporter: a notebook as Markdown (as nbconvert --to markdown): Markdown cells as
// they are, code in fenced blocks, text outputs fenced, HTML and Markdown outputs inline,
// images (and attachments) written as files in "<stem>_files/" beside the document.

#include <filesystem>
#include <map>
#include <string>

#include "common/error.hpp"
#include "renderers/notebook.hpp"

namespace kh::renderers {

class markdown_exporter {
 public:
  struct rendered {
    std::string markdown;
    std::map<std::string, std::string> files;  // relative path -> bytes
  };
  // `files_dir`: the relative folder images are referenced in ("report_files").
  rendered render(const notebook& nb, const std::string& files_dir) const;
  // Writes `path` and its image folder ("<stem>_files" beside it).
  result<void> write(const notebook& nb, const std::filesystem::path& path) const;
};

}  // namespace kh::renderers
