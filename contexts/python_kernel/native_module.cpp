// The embedded module `_kh_native`: what the Python half of the kernel (kh_kernel/*.py) calls to
// publish outputs and read stdin. Every publishing function first forwards
// pending stdout/stderr, so streams stay in order with rich outputs.
#include "native_module.hpp"

#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include <iostream>
#include <string>

#include "python_interpreter.hpp"

namespace py = pybind11;
using kh::python_kernel::native_buffer;
using kh::python_kernel::python_interpreter;

namespace {

python_interpreter& interpreter() { return python_interpreter::instance(); }

std::string to_string(py::handle text) {
    nl::json j = interpreter().to_json(text);
    return j.is_string() ? j.get<std::string>() : j.dump();
}

}  // namespace

PYBIND11_EMBEDDED_MODULE(_kh_native, m) {
    m.doc() = "Native services of kernel-host-python (publishing, stdin, logging).";

    py::class_<native_buffer>(m, "Buffer", py::buffer_protocol())
        .def_buffer([](native_buffer& b) {
            return py::buffer_info(b.bytes.data(), 1, py::format_descriptor<unsigned char>::format(),
                                   static_cast<py::ssize_t>(b.bytes.size()), false);
        })
        .def("__len__", [](const native_buffer& b) { return b.bytes.size(); });

    m.def("flush", [] { interpreter().flush_output(); },
          "Forward everything written to fds 1 and 2 so far.");

    m.def("display_data", [](py::handle data, py::handle metadata, py::handle transient) {
        auto& i = interpreter();
        i.publish_display("display_data", i.to_json(data), i.to_json(metadata), i.to_json(transient));
    });

    m.def("update_display_data", [](py::handle data, py::handle metadata, py::handle transient) {
        auto& i = interpreter();
        i.publish_display("update_display_data", i.to_json(data), i.to_json(metadata),
                          i.to_json(transient));
    });

    m.def("execute_result", [](int count, py::handle data, py::handle metadata) {
        auto& i = interpreter();
        i.flush_output();
        i.publish_execution_result(count, i.to_json(data), i.to_json(metadata));
    });

    m.def("error", [](py::handle ename, py::handle evalue, py::handle traceback) {
        auto& i = interpreter();
        i.flush_output();
        std::vector<std::string> lines;
        for (const auto& line : i.to_json(traceback)) {
            lines.push_back(line.is_string() ? line.get<std::string>() : line.dump());
        }
        i.publish_execution_error(to_string(ename), to_string(evalue), lines);
    });

    m.def("clear_output", [](bool wait) { interpreter().publish_clear_output(wait); });

    m.def("input", [](py::handle prompt, bool password) {
        std::string text = to_string(prompt);
        interpreter().flush_output();
        py::gil_scoped_release release;
        return interpreter().read_input(text, password);
    }, "Ask the frontend for a line over the stdin channel (raises KeyboardInterrupt on SIGINT).");

    m.def("log", [](py::handle text) { std::clog << "kernel-host-python: " << to_string(text) << std::endl; },
          "Write a line to the kernel's own log (its original stderr), never to the frontend.");
}

namespace kh::python_kernel {
void register_native_module() {}
}  // namespace kh::python_kernel
