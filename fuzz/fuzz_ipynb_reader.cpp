// The .ipynb reader (renderers/notebook) and what reads a parsed notebook next: the accessors the
// notebook runner uses, the nbformat writer, and the HTML and Markdown exporters of
// `kernel-host export` (with their Markdown renderer, ANSI and code highlighting). The input is
// the file's bytes. Properties: nothing throws or trips a sanitizer; a refusal is invalid_request;
// an accepted notebook dumps to JSON that parses and validates again (idempotent dump).
#include "fuzz/fuzz_common.hpp"
#include "renderers/html_exporter.hpp"
#include "renderers/markdown_exporter.hpp"
#include "renderers/notebook.hpp"

namespace rd = kh::renderers;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto nb = rd::notebook::parse(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!nb) {
    KH_FUZZ_CHECK(nb.error().code == kh::errc::invalid_request);
    return 0;
  }
  (void)nb->kernel_name();
  (void)nb->language();
  (void)nb->minor();
  for (std::size_t i = 0; i < nb->size(); ++i) {
    (void)nb->source(i);
    (void)nb->tags(i);
    (void)nb->has_tag(i, "parameters");
    (void)nb->cell_label(i);
    const auto& cell = nb->cells()[i];
    if (cell.contains("outputs")) (void)rd::notebook::outputs_for_disk(cell["outputs"]);
  }
  const std::string dumped = nb->dump();
  auto again = rd::notebook::parse(dumped);
  KH_FUZZ_CHECK(again.has_value());
  KH_FUZZ_CHECK(again->dump() == dumped);

  (void)rd::html_exporter{}.render(*nb, "fuzz");
  (void)rd::markdown_exporter{}.render(*nb, "fuzz_files");
  return 0;
}
