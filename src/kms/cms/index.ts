// CMS EnvelopedData for KMS CiphertextForRecipient: built by the embedded KMS, opened by the enclave side.
export { buildEnvelope, openEnvelope, rsaPublicKey, subjectKeyId, id_aes256_CBC } from './envelope.js';
