// The node's Ed25519 signing key (seals, checkpoints, recovery records) and the keyring of public
// keys by key id that verify reads. OpenSSL 3 EVP only; file I/O only at start-up and in the CLI.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "record/limits.hpp"

namespace gh::rec {

using KeyId = std::array<uint8_t, limits::key_id_bytes>;         // SHA-256(public key)[0..16)
using PublicKey = std::array<uint8_t, limits::public_key_bytes>;  // raw Ed25519 (RFC 8032)
using Signature = std::array<uint8_t, limits::signature_bytes>;   // Ed25519 (RFC 8032 §5.1.6)

KeyId key_id_of(const PublicKey& public_key);
std::string key_id_hex(const KeyId& id);  // 32 lowercase hex digits
std::optional<KeyId> parse_key_id(std::string_view hex);

// Whether `signature` is `public_key`'s Ed25519 signature over `message`.
bool verify_ed25519(const PublicKey& public_key, std::span<const std::byte> message,
                    const Signature& signature);

// A loaded private key. Immutable once built: the flusher thread signs with it while the owner
// may swap in a newer one (key rotation) by replacing the shared pointer.
class NodeKey {
 public:
  // An unencrypted PKCS#8 PEM Ed25519 private key (what create_file and `gatehouse keygen
  // --node-key` write). Errors name the file.
  static Result<std::shared_ptr<const NodeKey>> load(const std::string& pem_file);
  // A fresh key written to `pem_file` (mode 0600, never replacing an existing file).
  static Result<std::shared_ptr<const NodeKey>> create_file(const std::string& pem_file);
  // A fresh key in memory only (tests, benchmarks).
  static Result<std::shared_ptr<const NodeKey>> generate();
  ~NodeKey();
  NodeKey(const NodeKey&) = delete;
  NodeKey& operator=(const NodeKey&) = delete;

  const KeyId& id() const { return id_; }
  const PublicKey& public_key() const { return public_key_; }
  // Thread-safe (each call makes its own context). Fails only when OpenSSL does.
  [[nodiscard]] Result<Signature> sign(std::span<const std::byte> message) const;

 private:
  struct Impl;
  explicit NodeKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  KeyId id_{};
  PublicKey public_key_{};
};

struct KeyringEntry {
  KeyId id{};
  PublicKey public_key{};
  std::string node_id;  // the node the key signs for
  std::string added;    // RFC 3339 UTC, informative
};

// Public keys by key id. Keys are only ever added: a retired key still verifies the segments it
// sealed. File format (record/FORMAT.md, "Keyring"): JSON
// {"gatehouse_keyring": 1, "keys": [{"key_id", "public_key" (base64url), "node_id", "added"}]}.
class Keyring {
 public:
  static Result<Keyring> load(const std::string& file);
  // An empty keyring when the file does not exist yet.
  static Result<Keyring> load_or_empty(const std::string& file);
  const KeyringEntry* find(const KeyId& id) const;
  // False when the key id is known already (with the same key; a different key under a known id
  // is an error).
  [[nodiscard]] Result<bool> add(KeyringEntry entry);
  // Atomic replace (temporary file, fsync, rename).
  [[nodiscard]] Result<void> save(const std::string& file) const;
  const std::vector<KeyringEntry>& entries() const { return entries_; }

 private:
  std::vector<KeyringEntry> entries_;
};

// The node key from `key_file`, created (mode 0600) when the file does not exist; its public key
// is added to `keyring_file` for `node_id` when missing. `created` tells which happened.
[[nodiscard]] Result<std::shared_ptr<const NodeKey>> load_or_create_node_key(
    const std::string& key_file, const std::string& keyring_file, const std::string& node_id,
    bool* created = nullptr);
// Key rotation: moves `key_file` aside to "<key_file>.<key id>.retired", writes a fresh key in
// its place and adds it to the keyring (the old public key stays there, so that verify still
// checks what it signed). The gateway signs with the new key from its next start, in new
// segments.
[[nodiscard]] Result<std::shared_ptr<const NodeKey>> rotate_node_key(const std::string& key_file,
                                                                     const std::string& keyring_file,
                                                                     const std::string& node_id);

// Adds `key` for `node_id` to the keyring file (created when missing) unless it is there already.
[[nodiscard]] Result<void> keyring_add(const std::string& keyring_file, const NodeKey& key,
                                       const std::string& node_id);

}  // namespace gh::rec
