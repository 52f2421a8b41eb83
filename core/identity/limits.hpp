// Every size, time and depth bound of caller identity, in one place (STYLE.md, Limits).
// Must not depend on anything but the standard library.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gh::identity {

// Ceilings on what ValidatorOptions may be configured to.
inline constexpr int64_t kClockSkewSCeiling = 600;
inline constexpr uint32_t kDelegationDepthCeiling = 64;
inline constexpr uint32_t kTokenBytesCeiling = 256 * 1024;

// Files read at start-up.
inline constexpr size_t kJwksFileBytesMax = 1024 * 1024;
inline constexpr size_t kKeyFileBytesMax = 64 * 1024;

// RFC 7518 §3.3 and §3.5: RSA keys of 2048 bits or larger MUST be used.
inline constexpr int kRsaModulusBitsMin = 2048;
// Larger moduli only make verification slower; nobody issues tokens with them.
inline constexpr int kRsaModulusBitsMax = 8192;

// The built-in issuer mints short-lived tokens only; exchange can only shrink this further.
inline constexpr int64_t kTokenTtlSMax = 24 * 3600;
// Actors the built-in issuer will nest; a validator may allow fewer (delegation_depth_max).
inline constexpr size_t kMintActorsMax = kDelegationDepthCeiling;

// Token exchange: every hop adds at most two token ids to "gh_lineage" (the subject token's and
// the actor token's), and the chain is at most kDelegationDepthCeiling deep.
inline constexpr size_t kLineageMax = 2 * kDelegationDepthCeiling + 2;
// "gh_connections": connection names a token is narrowed to.
inline constexpr size_t kConnectionsClaimMax = 256;
// CI provenance claims per issuer, and the length of one value (GitHub's job_workflow_ref is the
// longest real one, around 200 bytes).
inline constexpr size_t kProvenanceClaimsMax = 32;
inline constexpr size_t kProvenanceValueBytesMax = 1024;

static_assert(kRsaModulusBitsMin < kRsaModulusBitsMax);
static_assert(kTokenBytesCeiling <= kJwksFileBytesMax);

}  // namespace gh::identity
