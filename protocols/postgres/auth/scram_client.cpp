// SCRAM-SHA-256 client: message grammar of RFC 5802 §7, key derivation of §3, SHA-256 per RFC 7677.
// Must not depend on the PostgreSQL codec or on I/O; OpenSSL 3 EVP (MAC, KDF, digest) only.
#include "protocols/postgres/auth/scram_client.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>
#include <span>
#include <utility>

#include "core/assert.hpp"
#include "core/base64.hpp"
#include "protocols/postgres/auth/saslprep.hpp"

namespace gh::pg {
namespace {

using Digest = std::array<unsigned char, 32>;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

std::string_view view_of(std::span<const unsigned char> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// HMAC-SHA-256 through EVP_MAC (RFC 5802 §2.2 "HMAC(key, str)").
bool hmac_sha256(std::span<const unsigned char> key, std::string_view data, Digest& out) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  if (mac == nullptr) return false;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end(),
  };
  size_t len = 0;
  const bool ok = ctx != nullptr && EVP_MAC_init(ctx, key.data(), key.size(), params) == 1 &&
                  EVP_MAC_update(ctx, bytes_of(data), data.size()) == 1 &&
                  EVP_MAC_final(ctx, out.data(), &len, out.size()) == 1 && len == out.size();
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return ok;
}

bool sha256(std::span<const unsigned char> data, Digest& out) {
  size_t len = 0;
  return EVP_Q_digest(nullptr, "SHA256", nullptr, data.data(), data.size(), out.data(), &len) ==
             1 &&
         len == out.size();
}

// Hi(str, salt, i) of RFC 5802 §2.2 is PBKDF2 (RFC 8018) with HMAC as the PRF and one block.
bool pbkdf2_sha256(std::string_view password, std::string_view salt, uint32_t iterations,
                   Digest& out) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "PBKDF2", nullptr);
  if (kdf == nullptr) return false;
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  char digest_name[] = "SHA256";
  // Mode 1 turns off SP 800-132's lower bounds (128-bit salt, 1000 iterations): PostgreSQL
  // allows a server to choose less, and the server, not us, owns that choice.
  int pkcs5_mode = 1;
  // OSSL_PARAM wants non-const pointers; PBKDF2 only reads password and salt.
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, const_cast<char*>(password.data()),
                                        password.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_ITER, &iterations),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &pkcs5_mode),
      OSSL_PARAM_construct_end(),
  };
  const bool ok = ctx != nullptr && EVP_KDF_derive(ctx, out.data(), out.size(), params) == 1;
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  return ok;
}

// RFC 5802 §7: printable = %x21-2B / %x2D-7E (no ',').
bool is_printable_nonce(std::string_view s) {
  if (s.empty()) return false;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7E || c == ',') return false;
  }
  return true;
}

// RFC 5802 §5.1: ',' and '=' in a saslname are written "=2C" and "=3D".
std::string escape_saslname(std::string_view name) {
  std::string out;
  for (char ch : name) {
    if (ch == ',') {
      out += "=2C";
    } else if (ch == '=') {
      out += "=3D";
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

// Server text echoed into our error messages: printable ASCII only, so logs stay one line.
std::string sanitized(std::string_view s) {
  std::string out(s.substr(0, 200));
  for (char& ch : out) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7E) ch = '?';
  }
  return out;
}

// Splits "a=x,b=y,..." into attributes; each must be one ALPHA, '=', then a value.
struct Attribute {
  char name;
  std::string_view value;
};

std::optional<Attribute> parse_attribute(std::string_view field) {
  if (field.size() < 2 || field[1] != '=') return std::nullopt;
  const char name = field[0];
  if (!((name >= 'a' && name <= 'z') || (name >= 'A' && name <= 'Z'))) return std::nullopt;
  return Attribute{name, field.substr(2)};
}

// Takes the next ','-separated field off `rest`.
std::string_view next_field(std::string_view& rest) {
  const size_t comma = rest.find(',');
  std::string_view field = rest.substr(0, comma);
  rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  return field;
}

// RFC 5802 §7: posit-number = %x31-39 *DIGIT.
std::optional<uint64_t> parse_positive(std::string_view s) {
  if (s.empty() || s.size() > 10 || s[0] < '1' || s[0] > '9') return std::nullopt;
  uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  return v;
}

}  // namespace

ScramClient::ScramClient(std::string password, std::string client_nonce, std::string username)
    : nonce_(std::move(client_nonce)), username_(std::move(username)) {
  PreparedPassword prepared = saslprep_password(password);
  OPENSSL_cleanse(password.data(), password.size());
  password_ = std::move(prepared.bytes);
  if (nonce_.empty()) {
    unsigned char raw[kScramNonceRawBytes];
    // Failure means the process has no entropy source; nothing sensible can continue.
    GH_ASSERT(RAND_bytes(raw, sizeof raw) == 1);
    nonce_ = base64_encode(view_of(raw));
  }
  GH_ASSERT(is_printable_nonce(nonce_));
}

ScramClient::~ScramClient() {
  OPENSSL_cleanse(password_.data(), password_.size());
  if (keys_) {
    OPENSSL_cleanse(keys_->client_key.data(), keys_->client_key.size());
    OPENSSL_cleanse(keys_->server_key.data(), keys_->server_key.size());
  }
  OPENSSL_cleanse(server_signature_.data(), server_signature_.size());
}

void ScramClient::use_keys(ScramKeys keys) {
  GH_ASSERT(state_ == State::kInitial || state_ == State::kFirstSent);
  keys_ = std::move(keys);
}

std::unexpected<gh::Error> ScramClient::fail_with(std::string reason) {
  state_ = State::kFailed;
  return gh::fail("scram: " + std::move(reason));
}

std::string ScramClient::client_first_message() {
  GH_ASSERT(state_ == State::kInitial);
  state_ = State::kFirstSent;
  client_first_bare_ = "n=" + escape_saslname(username_) + ",r=" + nonce_;
  // gs2-header "n,,": no channel binding, no authzid (RFC 5802 §7).
  return "n,," + client_first_bare_;
}

gh::Result<std::string> ScramClient::client_final_message(std::string_view server_first) {
  GH_ASSERT(state_ == State::kFirstSent);
  if (server_first.size() > kScramServerMessageBytesMax) {
    return fail_with("server-first-message longer than " +
                     std::to_string(kScramServerMessageBytesMax) + " bytes");
  }
  // server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
  std::string_view rest = server_first;
  auto nonce_attr = parse_attribute(next_field(rest));
  if (nonce_attr && nonce_attr->name == 'm') {
    return fail_with("server requires an unsupported mandatory extension (m=)");
  }
  if (!nonce_attr || nonce_attr->name != 'r') {
    return fail_with("server-first-message does not start with r=");
  }
  const std::string_view nonce = nonce_attr->value;
  if (!is_printable_nonce(nonce)) return fail_with("server nonce has invalid characters");
  // The server must extend our nonce with its own part (§5.1), or it is replaying an exchange.
  if (nonce.size() <= nonce_.size() || nonce.substr(0, nonce_.size()) != nonce_) {
    return fail_with("server nonce does not extend the client nonce");
  }

  auto salt_attr = parse_attribute(next_field(rest));
  if (!salt_attr || salt_attr->name != 's') return fail_with("server-first-message lacks s=");
  std::optional<std::string> salt = base64_decode(salt_attr->value);
  if (!salt) return fail_with("salt is not valid base64");
  if (salt->empty()) return fail_with("salt is empty");
  if (salt->size() > kScramSaltBytesMax) return fail_with("salt is too long");

  auto iter_attr = parse_attribute(next_field(rest));
  if (!iter_attr || iter_attr->name != 'i') return fail_with("server-first-message lacks i=");
  const std::optional<uint64_t> iterations = parse_positive(iter_attr->value);
  if (!iterations || *iterations < kScramIterationsMin || *iterations > kScramIterationsMax) {
    return fail_with("iteration count '" + sanitized(iter_attr->value) + "' is not in [" +
                     std::to_string(kScramIterationsMin) + ", " +
                     std::to_string(kScramIterationsMax) + "]");
  }
  // Optional extensions must still be well-formed attributes; we understand none of them.
  while (!rest.empty()) {
    if (!parse_attribute(next_field(rest))) return fail_with("malformed extension attribute");
  }
  if (server_first.ends_with(',')) return fail_with("server-first-message ends with ','");

  if (!keys_ || keys_->salt != *salt || keys_->iterations != *iterations) {
    ScramKeys keys;
    keys.salt = std::move(*salt);
    keys.iterations = static_cast<uint32_t>(*iterations);
    Digest salted_password;
    const bool ok = pbkdf2_sha256(password_, keys.salt, keys.iterations, salted_password) &&
                    hmac_sha256(salted_password, "Client Key", keys.client_key) &&
                    hmac_sha256(salted_password, "Server Key", keys.server_key);
    OPENSSL_cleanse(salted_password.data(), salted_password.size());
    if (!ok) return fail_with("OpenSSL failed to derive the keys");
    keys_ = std::move(keys);
  }

  // c= is base64 of the gs2 header "n,,".
  const std::string final_without_proof = "c=biws,r=" + std::string(nonce);
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message += server_first;
  auth_message += ',';
  auth_message += final_without_proof;

  // RFC 5802 §3: ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage).
  Digest stored_key;
  Digest client_signature;
  if (!sha256(keys_->client_key, stored_key) ||
      !hmac_sha256(stored_key, auth_message, client_signature) ||
      !hmac_sha256(keys_->server_key, auth_message, server_signature_)) {
    return fail_with("OpenSSL failed to compute the proof");
  }
  Digest proof;
  for (size_t i = 0; i < proof.size(); ++i) proof[i] = keys_->client_key[i] ^ client_signature[i];
  state_ = State::kFinalSent;
  return final_without_proof + ",p=" + base64_encode(view_of(proof));
}

gh::Result<void> ScramClient::verify_server_final(std::string_view server_final) {
  GH_ASSERT(state_ == State::kFinalSent);
  if (server_final.size() > kScramServerMessageBytesMax) {
    return fail_with("server-final-message too long");
  }
  // server-final-message = (server-error / verifier) ["," extensions]
  std::string_view rest = server_final;
  const auto attr = parse_attribute(next_field(rest));
  if (attr && attr->name == 'e') {
    return fail_with("server rejected the authentication: " + sanitized(attr->value));
  }
  if (!attr || attr->name != 'v') return fail_with("server-final-message lacks v=");
  const std::optional<std::string> signature = base64_decode(attr->value);
  if (!signature || signature->size() != server_signature_.size()) {
    return fail_with("server signature is malformed");
  }
  // Constant time: a server guessing the signature learns nothing from our timing.
  if (CRYPTO_memcmp(signature->data(), server_signature_.data(), server_signature_.size()) != 0) {
    return fail_with("server signature does not match: the server does not know the password");
  }
  state_ = State::kVerified;
  return {};
}

}  // namespace gh::pg
