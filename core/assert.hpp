// Invariant checks for programmer errors: GH_ASSERT always on, GH_DASSERT in debug builds.
// Header-only and dependency-free so that sans-I/O codecs (and their fuzz builds) can use it.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace gh::detail {
[[noreturn]] inline void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "gatehouse: assertion failed: %s (%s:%d)\n", expr, file, line);
  std::abort();
}
}  // namespace gh::detail

// Never reachable from peer input: peers get protocol errors, not assertions (STYLE.md, Errors).
#define GH_ASSERT(cond) \
  ((cond) ? static_cast<void>(0) : ::gh::detail::assert_failed(#cond, __FILE__, __LINE__))

#ifdef NDEBUG
#define GH_DASSERT(cond) static_cast<void>(0)
#else
#define GH_DASSERT(cond) GH_ASSERT(cond)
#endif
