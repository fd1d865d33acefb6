#pragma once

#include <vector>

namespace kh::python_kernel {

// A binary message buffer handed to Python without copying: the bytes move from the xeus
// message into this object, which exposes them through the buffer protocol (writable), so
// `numpy.frombuffer(buffer, dtype)` views them in place. Python type: `_kh_native.Buffer`.
struct native_buffer {
    std::vector<char> bytes;
};

// The embedded module `_kh_native` (see native_module.cpp) is registered at static
// initialization by PYBIND11_EMBEDDED_MODULE; this function only forces the object file in.
void register_native_module();

}  // namespace kh::python_kernel
