#include "embedded_sources.hpp"

#include <pybind11/embed.h>

#include <stdexcept>
#include <string_view>

namespace kh::python_kernel {

namespace py = pybind11;

namespace {

struct embedded_source {
    const char* module;
    const char* path;
    bool is_package;
    const char* source;
};

const embedded_source sources[] = {
#include "embedded_sources.inc"
};

}  // namespace

void install_embedded_importer() {
    py::dict table;
    const char* importer = nullptr;
    for (const auto& s : sources) {
        if (std::string_view(s.module) == "kh_kernel._importer") {
            importer = s.source;
            continue;
        }
        table[py::str(s.module)] = py::make_tuple(s.path, s.is_package, s.source);
    }
    if (importer == nullptr) {
        throw std::runtime_error("kh_kernel/_importer.py is not embedded");
    }
    py::dict globals;
    globals["__name__"] = "kh_kernel._importer";
    globals["__builtins__"] = py::module_::import("builtins");
    globals["SOURCES"] = table;
    py::exec(py::str(importer), globals);
}

}  // namespace kh::python_kernel
