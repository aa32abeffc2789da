# Included by CMake right after llama.cpp's project() call: `make llama` passes
# -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file> in CMAKE_ARGS when it builds llama-cpp-python.
#
# llama-cpp-python forces LLAMA_BUILD_COMMON=ON into the CMake cache, yet its Python package loads only libllama
# and libggml*: llama.cpp's "common" library (argument parsing, chat-format parsers, a Jinja engine, an HTTP
# client) is about half of the compile and ships unused. A normal variable in llama.cpp's directory scope hides
# that cache entry (policy CMP0077, in force there), so neither common nor cpp-httplib (used only by common) is
# configured. tests/test_install.py checks that the built package has no libllama-common.
set(LLAMA_BUILD_COMMON OFF)
