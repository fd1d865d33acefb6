#pragma once

namespace kh::python_kernel {

// Makes the kh_kernel package (kh_kernel/*.py, embedded into the binary at build time by
// cmake/embed_python.cmake) importable: runs kh_kernel/_importer.py, which puts a meta-path
// finder serving the embedded sources in front of sys.meta_path. Needs the GIL.
void install_embedded_importer();

}  // namespace kh::python_kernel
