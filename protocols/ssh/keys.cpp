// SSH key files and fingerprints over libssh's pki functions. Blocking file I/O: start-up and CLI
// paths only, never a shard's data path.
#include "protocols/ssh/keys.hpp"

#include <fcntl.h>
#include <libssh/libssh.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

namespace gh::ssh {

void KeyDeleter::operator()(ssh_key_struct* key) const { ssh_key_free(key); }

namespace {

std::string take_string(char* s) {
  std::string out = s != nullptr ? s : "";
  ssh_string_free_char(s);
  return out;
}

}  // namespace

std::string fingerprint(ssh_key_struct* key) {
  unsigned char* hash = nullptr;
  size_t length = 0;
  if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) != SSH_OK) return "?";
  std::string out = take_string(ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length));
  ssh_clean_pubkey_hash(&hash);
  return out;
}

std::string host_key_algorithms(ssh_key_struct* key) {
  switch (ssh_key_type(key)) {
    case SSH_KEYTYPE_RSA: return "rsa-sha2-512,rsa-sha2-256";
    case SSH_KEYTYPE_ECDSA_P256: return "ecdsa-sha2-nistp256";
    case SSH_KEYTYPE_ECDSA_P384: return "ecdsa-sha2-nistp384";
    case SSH_KEYTYPE_ECDSA_P521: return "ecdsa-sha2-nistp521";
    default: return ssh_key_type_to_char(ssh_key_type(key)) ? ssh_key_type_to_char(ssh_key_type(key)) : "";
  }
}

Result<Key> load_private_key(const std::filesystem::path& file) {
  ssh_key key = nullptr;
  const int rc = ssh_pki_import_privkey_file(file.c_str(), nullptr, nullptr, nullptr, &key);
  if (rc != SSH_OK || key == nullptr) {
    const bool exists = std::filesystem::exists(file);
    return fail(fmt::format("{}: {}", file.string(),
                            exists ? "not an unencrypted SSH private key" : "no such file"));
  }
  return Key(key);
}

Result<Key> parse_public_key(std::string_view line) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos) return fail("expected \"<type> <base64> [comment]\"");
  const std::string type(line.substr(0, space));
  std::string_view rest = line.substr(space + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const std::string base64(rest.substr(0, rest.find(' ')));
  const enum ssh_keytypes_e kind = ssh_key_type_from_name(type.c_str());
  if (kind == SSH_KEYTYPE_UNKNOWN) return fail(fmt::format("unknown key type '{}'", type));
  ssh_key key = nullptr;
  if (ssh_pki_import_pubkey_base64(base64.c_str(), kind, &key) != SSH_OK || key == nullptr)
    return fail(fmt::format("not a valid {} public key", type));
  return Key(key);
}

Result<std::string> generate_host_key(const std::filesystem::path& file) {
  if (std::filesystem::exists(file)) return fail(fmt::format("{}: exists; not replaced", file.string()));
  ssh_key key = nullptr;
  if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) return fail("Ed25519 key generation failed");
  Key owned(key);
  // Created empty with mode 0600 before libssh writes the key into it, and renamed into place
  // only when complete, without replacing anything.
  const std::filesystem::path temp = file.string() + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail(fmt::format("{}: {}", temp.string(), strerror(errno)));
  ::close(fd);
  if (ssh_pki_export_privkey_file(key, nullptr, nullptr, nullptr, temp.c_str()) != SSH_OK) {
    ::unlink(temp.c_str());
    return fail(fmt::format("{}: cannot write the key", temp.string()));
  }
  if (::link(temp.c_str(), file.c_str()) != 0) {
    const int e = errno;
    ::unlink(temp.c_str());
    return fail(fmt::format("{}: {}", file.string(), strerror(e)));
  }
  ::unlink(temp.c_str());
  char* base64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &base64) != SSH_OK) return fail("cannot export the public key");
  const std::string line = fmt::format("{} {} gatehouse\n", ssh_key_type_to_char(ssh_key_type(key)),
                                       take_string(base64));
  std::ofstream pub(file.string() + ".pub", std::ios::binary | std::ios::trunc);
  pub << line;
  if (!pub) return fail(fmt::format("{}.pub: cannot write", file.string()));
  return fingerprint(key);
}

}  // namespace gh::ssh
