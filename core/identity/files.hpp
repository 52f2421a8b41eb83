// Reading and atomically writing the small key and JWKS files of caller identity.
// Must not depend on protocols; plain POSIX file I/O, only at start-up or from the CLI.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace gh::identity {

// The whole file, refused if larger than bytes_max. Errors name the path.
gh::Result<std::string> read_file(const std::filesystem::path& path, size_t bytes_max);

// Writes through a temporary file in the same directory, fsyncs it, then moves it into place.
// replace=false refuses (atomically, via link(2)) to overwrite an existing file.
gh::Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view bytes,
                                   mode_t mode, bool replace);

}  // namespace gh::identity
