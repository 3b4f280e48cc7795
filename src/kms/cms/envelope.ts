// CMS EnvelopedData (RFC 5652) as AWS KMS returns it in CiphertextForRecipient: one KeyTransRecipientInfo
// with RSAES-OAEP (SHA-256, MGF1-SHA-256; RFC 8017/4055) key transport to the recipient's RSA key, content
// encrypted with AES-256-CBC (RFC 3565). ASN.1 is built and parsed with @peculiar/asn1-*, crypto is Node's.
import { createCipheriv, createDecipheriv, createHash, createPublicKey, privateDecrypt, publicEncrypt, randomBytes, constants, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  CMSVersion, ContentInfo, EncryptedContent, EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier,
  RecipientInfo, RecipientInfos, id_data, id_envelopedData,
} from '@peculiar/asn1-cms';
import { AlgorithmIdentifier, SubjectKeyIdentifier, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { RsaEsOaepParams, id_RSAES_OAEP, id_mgf1, id_sha256, pSpecifiedEmpty } from '@peculiar/asn1-rsa';
import { CofferError, ErrorCode } from '../../errors.js';

/** id-aes256-CBC (RFC 3565 §4.1). */
export const id_aes256_CBC = '2.16.840.1.101.3.4.1.42';
const MIN_RSA_BITS = 2048;

const sha256Alg = (): AlgorithmIdentifier => new AlgorithmIdentifier({ algorithm: id_sha256, parameters: null });

/**
 * Encrypts `plaintext` to the RSA public key `recipientSpkiDer` (SubjectPublicKeyInfo DER) and returns the
 * DER ContentInfo{EnvelopedData}. The recipient is named by subjectKeyIdentifier = SHA-1 of the public key bits
 * (RFC 5280 §4.2.1.2 method 1), which is what a certificate made for the same key by openssl carries.
 * @throws CofferError CMS if the key is not RSA of at least 2048 bits.
 */
export function buildEnvelope(plaintext: Uint8Array, recipientSpkiDer: Uint8Array): Buffer {
  const { key: publicKey, ski } = recipient(recipientSpkiDer);
  const cek = randomBytes(32);
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-cbc', cek, iv);
  const encrypted = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const encryptedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
  const ktri = new KeyTransRecipientInfo({
    version: CMSVersion.v2,
    rid: new RecipientIdentifier({ subjectKeyIdentifier: new SubjectKeyIdentifier(ski) }),
    keyEncryptionAlgorithm: new AlgorithmIdentifier({ algorithm: id_RSAES_OAEP, parameters: oaepParamsDer() }),
    encryptedKey: new OctetString(encryptedKey),
  });
  const enveloped = new EnvelopedData({
    version: CMSVersion.v2, // RFC 5652 §6.1: v2 because the recipient info is v2 (subjectKeyIdentifier)
    recipientInfos: new RecipientInfos([new RecipientInfo({ ktri })]),
    encryptedContentInfo: new EncryptedContentInfo({
      contentType: id_data,
      contentEncryptionAlgorithm: new AlgorithmIdentifier({ algorithm: id_aes256_CBC, parameters: AsnConvert.serialize(new OctetString(iv)) }),
      encryptedContent: new EncryptedContent({ value: new OctetString(encrypted) }),
    }),
  });
  return Buffer.from(AsnConvert.serialize(new ContentInfo({ contentType: id_envelopedData, content: AsnConvert.serialize(enveloped) })));
}

/** The DER of RSAES-OAEP's parameters (SHA-256, MGF1-SHA-256, empty label): the same for every envelope, made once. */
let oaepDer: ArrayBuffer | undefined;
function keptOaepDer(): ArrayBuffer {
  oaepDer ??= AsnConvert.serialize(new RsaEsOaepParams({
    hashAlgorithm: sha256Alg(),
    maskGenAlgorithm: new AlgorithmIdentifier({ algorithm: id_mgf1, parameters: AsnConvert.serialize(sha256Alg()) }),
  }));
  return oaepDer;
}
function oaepParamsDer(): ArrayBuffer {
  return keptOaepDer().slice(0); // a copy: nothing that serializes an envelope can change the kept one
}

/**
 * A recipient key as buildEnvelope needs it (parsed and checked by rsaPublicKey, and its subjectKeyIdentifier),
 * kept per exact SPKI bytes: the KMS sends every data key of an enclave to the same attested key, and parsing it
 * (ASN.1, twice) cost more than the RSA encryption. Only keys that passed the check are kept; 16 at most.
 */
const recipients = new Map<string, { key: KeyObject; ski: Buffer }>();
const KEEP_RECIPIENTS = 16;
function recipient(spkiDer: Uint8Array): { key: KeyObject; ski: Buffer } {
  const id = Buffer.from(spkiDer).toString('base64');
  const kept = recipients.get(id);
  if (kept) return kept;
  const made = { key: rsaPublicKey(spkiDer), ski: subjectKeyId(spkiDer) };
  recipients.set(id, made);
  while (recipients.size > KEEP_RECIPIENTS) recipients.delete(recipients.keys().next().value as string);
  return made;
}

/** subjectKeyIdentifier of a private key's public half, kept per key object (an enclave opens every envelope with one key). */
const ownKeyIds = new WeakMap<KeyObject, Buffer>();
function ownKeyId(privateKey: KeyObject): Buffer {
  let id = ownKeyIds.get(privateKey);
  if (!id) {
    id = subjectKeyId(createPublicKey(privateKey).export({ format: 'der', type: 'spki' }));
    ownKeyIds.set(privateKey, id);
  }
  return id;
}

/**
 * Opens a CMS EnvelopedData (DER or BER, indefinite lengths and chunked content accepted) with an RSA private
 * key. Only RSAES-OAEP-SHA-256 key transport and AES-256-CBC content are accepted; anything else is refused.
 * @throws CofferError CMS when the structure is not such an envelope or no recipient info opens with this key.
 */
export function openEnvelope(envelope: Uint8Array, privateKey: KeyObject): Buffer {
  let enveloped: EnvelopedData;
  try {
    const info = AsnConvert.parse(Buffer.from(envelope), ContentInfo);
    if (info.contentType !== id_envelopedData) throw new Error(`content type ${info.contentType} is not envelopedData`);
    enveloped = AsnConvert.parse(info.content, EnvelopedData);
  } catch (e) {
    throw new CofferError(ErrorCode.CMS, `not a CMS EnvelopedData: ${(e as Error).message}`, { cause: e });
  }
  const eci = enveloped.encryptedContentInfo;
  if (eci.contentEncryptionAlgorithm.algorithm !== id_aes256_CBC || !eci.contentEncryptionAlgorithm.parameters) {
    throw new CofferError(ErrorCode.CMS, `content encryption ${eci.contentEncryptionAlgorithm.algorithm} is not AES-256-CBC`);
  }
  const iv = Buffer.from(AsnConvert.parse(eci.contentEncryptionAlgorithm.parameters, OctetString).buffer);
  if (iv.length !== 16) throw new CofferError(ErrorCode.CMS, 'AES-256-CBC IV must be 16 bytes');
  const content = encryptedBytes(eci.encryptedContent);
  const cek = unwrapContentKey(enveloped.recipientInfos, privateKey);
  try {
    const d = createDecipheriv('aes-256-cbc', cek, iv);
    return Buffer.concat([d.update(content), d.final()]);
  } catch (e) {
    throw new CofferError(ErrorCode.CMS, 'CMS content does not decrypt (bad padding)', { cause: e });
  }
}

function unwrapContentKey(infos: RecipientInfos, privateKey: KeyObject): Buffer {
  const ours = ownKeyId(privateKey);
  let candidates = 0;
  for (const ri of infos) {
    const ktri = ri.ktri;
    if (!ktri || !isOaepSha256(ktri.keyEncryptionAlgorithm)) continue;
    const ski = ktri.rid.subjectKeyIdentifier;
    if (ski && !Buffer.from(ski.buffer).equals(ours)) continue; // addressed to another key
    candidates++;
    try {
      const cek = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(ktri.encryptedKey.buffer));
      if (cek.length === 32) return cek;
    } catch {
      // not ours (issuerAndSerialNumber recipients are tried in turn); fall through
    }
  }
  throw new CofferError(ErrorCode.CMS, candidates === 0 ? 'no RSAES-OAEP-SHA-256 recipient info for this key' : 'no recipient info opens with this private key');
}

function isOaepSha256(alg: AlgorithmIdentifier): boolean {
  if (alg.algorithm !== id_RSAES_OAEP || !alg.parameters) return false;
  // the exact DER buildEnvelope writes (what the KMS sends every time) needs no parse; any other encoding is parsed
  if (Buffer.from(alg.parameters).equals(Buffer.from(keptOaepDer()))) return true;
  try {
    const p = AsnConvert.parse(alg.parameters, RsaEsOaepParams);
    const mgfHash = p.maskGenAlgorithm.parameters ? AsnConvert.parse(p.maskGenAlgorithm.parameters, AlgorithmIdentifier).algorithm : null;
    // An absent pSourceAlgorithm decodes as the library's default object (which wrongly carries SHA-1("") as
    // the label); an explicit one must be pSpecified with an empty label. Any real label fails OAEP anyway.
    const emptyLabel = p.pSourceAlgorithm.isEqual(pSpecifiedEmpty) ||
      (p.pSourceAlgorithm.parameters ? AsnConvert.parse(p.pSourceAlgorithm.parameters, OctetString).byteLength === 0 : false);
    return p.hashAlgorithm.algorithm === id_sha256 && p.maskGenAlgorithm.algorithm === id_mgf1 && mgfHash === id_sha256 && emptyLabel;
  } catch {
    return false;
  }
}

function encryptedBytes(ec: EncryptedContent | undefined): Buffer {
  if (ec?.value) return Buffer.from(ec.value.buffer);
  if (ec?.constructedValue) return Buffer.concat(ec.constructedValue.map((o) => Buffer.from(o.buffer)));
  throw new CofferError(ErrorCode.CMS, 'CMS envelope carries no encrypted content (detached content is not supported)');
}

/** Parses a recipient key. @throws CofferError CMS unless it is an RSA SubjectPublicKeyInfo of at least 2048 bits. */
export function rsaPublicKey(spkiDer: Uint8Array): KeyObject {
  const kept = recipients.get(Buffer.from(spkiDer).toString('base64'));
  if (kept) return kept.key;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  } catch (e) {
    throw new CofferError(ErrorCode.CMS, 'recipient public key is not a DER SubjectPublicKeyInfo', { cause: e });
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < MIN_RSA_BITS) {
    throw new CofferError(ErrorCode.CMS, `recipient key must be RSA of at least ${MIN_RSA_BITS} bits`);
  }
  return key;
}

/** RFC 5280 §4.2.1.2 (1): SHA-1 over the subjectPublicKey BIT STRING's bytes. */
export function subjectKeyId(spkiDer: Uint8Array): Buffer {
  const spki = AsnConvert.parse(Buffer.from(spkiDer), SubjectPublicKeyInfo);
  return createHash('sha1').update(Buffer.from(spki.subjectPublicKey)).digest();
}
