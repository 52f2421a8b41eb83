// The node's Ed25519 signing key (seals, checkpoints, recovery records) and the keyring of public
// keys by key id that verify reads. OpenSSL 3 EVP only; file I/O only at start-up and in the CLI.
#include "record/keys.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/assert.hpp"
#include "core/base64.hpp"
#include "core/identity/files.hpp"

namespace gh::rec {

namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
void bio_free(BIO* b) { BIO_free(b); }
using Bio = std::unique_ptr<BIO, Deleter<BIO, bio_free>>;

std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out.empty() ? std::string("unknown OpenSSL error") : out;
}

// Never prompt for a passphrase: an encrypted key file is refused.
int no_passphrase(char*, int, int, void*) { return -1; }

Result<PublicKey> raw_public(EVP_PKEY* key) {
  PublicKey out{};
  size_t length = out.size();
  if (EVP_PKEY_get_raw_public_key(key, out.data(), &length) != 1 || length != out.size()) {
    return fail("cannot read the Ed25519 public key: " + openssl_errors());
  }
  return out;
}

std::string now_rfc3339() {
  const time_t now = ::time(nullptr);
  tm parts{};
  gmtime_r(&now, &parts);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", parts.tm_year + 1900, parts.tm_mon + 1,
                     parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec);
}

}  // namespace

KeyId key_id_of(const PublicKey& public_key) {
  uint8_t digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  GH_ASSERT(EVP_Digest(public_key.data(), public_key.size(), digest, &length, EVP_sha256(),
                       nullptr) == 1);
  KeyId id{};
  std::memcpy(id.data(), digest, id.size());
  return id;
}

std::string key_id_hex(const KeyId& id) {
  std::string out;
  for (uint8_t b : id) out += fmt::format("{:02x}", b);
  return out;
}

std::optional<KeyId> parse_key_id(std::string_view hex) {
  KeyId id{};
  if (hex.size() != id.size() * 2) return std::nullopt;
  for (size_t i = 0; i < id.size(); ++i) {
    uint8_t b = 0;
    auto [end, ec] = std::from_chars(hex.data() + 2 * i, hex.data() + 2 * i + 2, b, 16);
    if (ec != std::errc() || end != hex.data() + 2 * i + 2) return std::nullopt;
    id[i] = b;
  }
  return id;
}

bool verify_ed25519(const PublicKey& public_key, std::span<const std::byte> message,
                    const Signature& signature) {
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key.data(),
                                       public_key.size()));
  if (!key) {
    ERR_clear_error();
    return false;
  }
  MdCtx ctx(EVP_MD_CTX_new());
  // Ed25519 is a one-shot scheme: no digest is named (RFC 8032 PureEdDSA).
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), signature.data(), signature.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

struct NodeKey::Impl {
  Pkey key;
};

NodeKey::NodeKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NodeKey::~NodeKey() = default;

Result<std::shared_ptr<const NodeKey>> NodeKey::generate() {
  auto impl = std::make_unique<Impl>();
  impl->key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!impl->key) return fail("Ed25519 key generation failed: " + openssl_errors());
  auto pub = raw_public(impl->key.get());
  if (!pub) return std::unexpected(pub.error());
  std::shared_ptr<NodeKey> key(new NodeKey(std::move(impl)));
  key->public_key_ = *pub;
  key->id_ = key_id_of(*pub);
  return key;
}

Result<std::shared_ptr<const NodeKey>> NodeKey::load(const std::string& pem_file) {
  auto text = identity::read_file(pem_file, limits::key_file_bytes_max);
  if (!text) return std::unexpected(text.error());
  Bio bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  auto impl = std::make_unique<Impl>();
  if (bio) impl->key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  OPENSSL_cleanse(text->data(), text->size());
  if (!impl->key) {
    return fail(fmt::format("{}: not an unencrypted PEM private key: {}", pem_file,
                            openssl_errors()));
  }
  if (!EVP_PKEY_is_a(impl->key.get(), "ED25519")) {
    return fail(fmt::format("{}: not an Ed25519 key", pem_file));
  }
  auto pub = raw_public(impl->key.get());
  if (!pub) return fail(fmt::format("{}: {}", pem_file, pub.error().message));
  std::shared_ptr<NodeKey> key(new NodeKey(std::move(impl)));
  key->public_key_ = *pub;
  key->id_ = key_id_of(*pub);
  return key;
}

Result<std::shared_ptr<const NodeKey>> NodeKey::create_file(const std::string& pem_file) {
  auto key = generate();
  if (!key) return key;
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), (*key)->impl_->key.get(), nullptr, nullptr,
                                            0, nullptr, nullptr) != 1) {
    return fail("cannot encode the node key: " + openssl_errors());
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  if (length <= 0 || data == nullptr) return fail("cannot encode the node key");
  auto written = identity::write_file_atomic(
      pem_file, std::string_view(data, static_cast<size_t>(length)), 0600, /*replace=*/false);
  OPENSSL_cleanse(data, static_cast<size_t>(length));
  if (!written) return std::unexpected(written.error());
  return key;
}

Result<Signature> NodeKey::sign(std::span<const std::byte> message) const {
  MdCtx ctx(EVP_MD_CTX_new());
  Signature signature{};
  size_t length = signature.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), signature.data(), &length,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      length != signature.size()) {
    return fail("Ed25519 signing failed: " + openssl_errors());
  }
  return signature;
}

Result<Keyring> Keyring::load(const std::string& file) {
  auto text = identity::read_file(file, limits::keyring_file_bytes_max);
  if (!text) return std::unexpected(text.error());
  const auto bad = [&](const std::string& why) {
    return fail(fmt::format("{}: not a gatehouse keyring: {}", file, why));
  };
  const nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || doc.value("gatehouse_keyring", 0) != 1) {
    return bad("expected {\"gatehouse_keyring\": 1, \"keys\": [...]}");
  }
  const auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) return bad("\"keys\" is not a list");
  Keyring ring;
  for (size_t i = 0; i < keys->size(); ++i) {
    const nlohmann::json& k = (*keys)[i];
    const auto text_of = [&](const char* name) -> std::string {
      const auto it = k.find(name);
      return it != k.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    KeyringEntry entry;
    auto id = parse_key_id(text_of("key_id"));
    if (!id) return bad(fmt::format("keys[{}].key_id is not 32 hex digits", i));
    auto raw = base64url_decode(text_of("public_key"));
    if (!raw || raw->size() != entry.public_key.size()) {
      return bad(fmt::format("keys[{}].public_key is not a base64url Ed25519 public key", i));
    }
    std::memcpy(entry.public_key.data(), raw->data(), raw->size());
    if (key_id_of(entry.public_key) != *id) {
      return bad(fmt::format("keys[{}]: key_id does not belong to public_key", i));
    }
    entry.id = *id;
    entry.node_id = text_of("node_id");
    entry.added = text_of("added");
    auto added = ring.add(std::move(entry));
    if (!added) return bad(added.error().message);
  }
  return ring;
}

Result<Keyring> Keyring::load_or_empty(const std::string& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 && errno == ENOENT) return Keyring{};
  return load(file);
}

const KeyringEntry* Keyring::find(const KeyId& id) const {
  for (const KeyringEntry& e : entries_) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

Result<bool> Keyring::add(KeyringEntry entry) {
  if (const KeyringEntry* known = find(entry.id)) {
    if (known->public_key != entry.public_key || known->node_id != entry.node_id) {
      return fail(fmt::format("key id {} is listed twice with different keys or nodes",
                              key_id_hex(entry.id)));
    }
    return false;
  }
  entries_.push_back(std::move(entry));
  return true;
}

Result<void> Keyring::save(const std::string& file) const {
  nlohmann::json keys = nlohmann::json::array();
  for (const KeyringEntry& e : entries_) {
    keys.push_back({
        {"key_id", key_id_hex(e.id)},
        {"public_key", base64url_encode(std::string_view(
                           reinterpret_cast<const char*>(e.public_key.data()), e.public_key.size()))},
        {"node_id", e.node_id},
        {"added", e.added},
    });
  }
  const nlohmann::json doc = {{"gatehouse_keyring", 1}, {"keys", std::move(keys)}};
  return identity::write_file_atomic(
      file, doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", 0644,
      /*replace=*/true);
}

Result<void> keyring_add(const std::string& keyring_file, const NodeKey& key,
                         const std::string& node_id) {
  auto ring = Keyring::load_or_empty(keyring_file);
  if (!ring) return std::unexpected(ring.error());
  auto added = ring->add(KeyringEntry{key.id(), key.public_key(), node_id, now_rfc3339()});
  if (!added) return fail(fmt::format("{}: {}", keyring_file, added.error().message));
  if (!*added) return {};
  return ring->save(keyring_file);
}

Result<std::shared_ptr<const NodeKey>> load_or_create_node_key(const std::string& key_file,
                                                               const std::string& keyring_file,
                                                               const std::string& node_id,
                                                               bool* created) {
  struct stat st {};
  const bool missing = ::stat(key_file.c_str(), &st) != 0 && errno == ENOENT;
  auto key = missing ? NodeKey::create_file(key_file) : NodeKey::load(key_file);
  if (!key) return key;
  if (created != nullptr) *created = missing;
  if (auto added = keyring_add(keyring_file, **key, node_id); !added) {
    return std::unexpected(added.error());
  }
  return key;
}

Result<std::shared_ptr<const NodeKey>> rotate_node_key(const std::string& key_file,
                                                       const std::string& keyring_file,
                                                       const std::string& node_id) {
  auto old = NodeKey::load(key_file);
  if (!old) return old;
  // The old public key must be in the keyring before its private key goes away.
  if (auto added = keyring_add(keyring_file, **old, node_id); !added) {
    return std::unexpected(added.error());
  }
  const std::string retired = key_file + "." + key_id_hex((*old)->id()) + ".retired";
  if (::link(key_file.c_str(), retired.c_str()) != 0 || ::unlink(key_file.c_str()) != 0) {
    return fail(fmt::format("{}: cannot move aside to {}: {}", key_file, retired,
                            std::strerror(errno)));
  }
  auto fresh = NodeKey::create_file(key_file);
  if (!fresh) return fresh;
  if (auto added = keyring_add(keyring_file, **fresh, node_id); !added) {
    return std::unexpected(added.error());
  }
  return fresh;
}

}  // namespace gh::rec
