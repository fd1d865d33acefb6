// kernel-host-python: a Jupyter kernel for Python built on xeus 2.4.1 and pybind11, embedding
// Debian's CPython. Usage: kernel-host-python -f <connection file>
//
// Composition root: blocks SIGINT, captures fds 1 and 2, starts Python, imports the embedded
// kh_kernel package, then wires interpreter, history, server and output capture into an xkernel.
#include <Python.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include <pybind11/embed.h>
#include <xeus/xeus_context.hpp>
#include <xeus/xkernel.hpp>
#include <xeus/xkernel_configuration.hpp>

#include "embedded_sources.hpp"
#include "history_store.hpp"
#include "kernel_server.hpp"
#include "output_capture.hpp"
#include "python_interpreter.hpp"
#include "sigint_control.hpp"

namespace py = pybind11;
namespace kp = kh::python_kernel;

namespace {

constexpr const char* usage = "usage: kernel-host-python -f <connection file>\n";

struct options {
    std::string connection_file;
};

bool parse_args(int argc, char* argv[], options& opts) {
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if ((arg == "-f" || arg == "--connection-file") && i + 1 < argc) {
            opts.connection_file = argv[++i];
        } else if (arg.rfind("--connection-file=", 0) == 0) {
            opts.connection_file = arg.substr(std::strlen("--connection-file="));
        } else if (arg == "--version") {
            std::printf("kernel-host-python %s\n", KH_KERNEL_VERSION);
            std::exit(0);
        } else if (arg == "-h" || arg == "--help") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "kernel-host-python: unknown argument '%s'\n%s", arg.c_str(), usage);
            return false;
        }
    }
    if (opts.connection_file.empty()) {
        std::fputs(usage, stderr);
        return false;
    }
    return true;
}

void start_python(const char* argv0) {
    // Debian's interpreter with its own prefix and dist-packages, whatever python3 is on PATH
    // (a pyenv shim would otherwise become sys.executable for subprocess and multiprocessing).
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.parse_argv = 0;
    config.install_signal_handlers = 1;
    PyConfig_SetString(&config, &config.executable, L"" KH_PYTHON_EXECUTABLE);
    const char* const args[] = {argv0};
    py::initialize_interpreter(&config, 1, args, false);
}

}  // namespace

int main(int argc, char* argv[]) {
    kp::block_sigint();  // before any thread exists, so every thread inherits it

    options opts;
    if (!parse_args(argc, argv, opts)) {
        return 2;
    }
    if (!std::ifstream(opts.connection_file)) {
        std::fprintf(stderr, "kernel-host-python: cannot read connection file '%s': %s\n",
                     opts.connection_file.c_str(), std::strerror(errno));
        return 2;
    }

    try {
        xeus::xconfiguration config = xeus::load_configuration(opts.connection_file);

        kp::output_capture output;
        output.redirect();

        start_python(argv[0]);
        kp::install_embedded_importer();

        auto history = std::make_unique<kp::history_store>();
        auto& history_ref = *history;
        auto interpreter = std::make_unique<kp::python_interpreter>(output, history_ref);
        auto& interpreter_ref = *interpreter;

        xeus::xkernel kernel(config, xeus::get_user_name(), xeus::make_context<zmq::context_t>(),
                             std::move(interpreter), kp::kernel_server::make, std::move(history),
                             nullptr, xeus::make_null_debugger, nl::json::object(),
                             nl::json::error_handler_t::replace);

        auto& server = dynamic_cast<kp::kernel_server&>(kernel.get_server());
        server.set_pre_dispatch_hook(
            [&interpreter_ref](const xeus::xmessage& msg) { interpreter_ref.before_dispatch(msg); });
        server.set_interrupted_hook([] {
            py::gil_scoped_acquire gil;
            if (PyErr_CheckSignals() != 0) {
                throw py::error_already_set();
            }
        });
        interpreter_ref.set_thread_publisher([&server](const std::string& type, nl::json content) {
            server.publish_from_any_thread(type, std::move(content));
        });
        output.start([&server](const std::string& name, std::string text) {
            server.publish_stream(name, std::move(text));
        });
        server.set_exit_hook([&output] { output.stop(); });

        kernel.start();  // never returns: the server ends the process after shutdown
    } catch (const py::error_already_set& e) {
        std::cerr << "kernel-host-python: Python failed to start: " << e.what() << std::endl;
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "kernel-host-python: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
