// RAII owners for the OpenSSL 3 objects identity uses, and the OpenSSL error queue as text.
// Must not depend on protocols or I/O; EVP APIs only (no deprecated low-level key APIs).
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <memory>
#include <string>

namespace gh::identity::ossl {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};

using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ParamBld = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using Params = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

inline void bio_free(BIO* b) { BIO_free(b); }
using Bio = std::unique_ptr<BIO, Deleter<BIO, bio_free>>;

// Keys are shared read-only between threads once built (OpenSSL 3 allows concurrent use of an
// EVP_PKEY that nobody modifies); each operation makes its own EVP_MD_CTX.
using SharedPkey = std::shared_ptr<EVP_PKEY>;
inline SharedPkey share(Pkey key) { return SharedPkey(key.release(), EVP_PKEY_free); }

// Drains this thread's OpenSSL error queue and returns it as one line ("" when empty). Every failed
// call must be followed by this (or ERR_clear_error): a stale queue confuses later SSL_get_error
// calls on the same thread.
std::string drain_errors();

// The SHA-256 implementation, fetched once per process (implicit fetches cost a lock each time).
const EVP_MD* sha256();

}  // namespace gh::identity::ossl
