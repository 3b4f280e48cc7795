// CMS EnvelopedData for KMS CiphertextForRecipient: built by the embedded KMS, opened by the enclave side.
export { buildEnvelope, openEnvelope, subjectKeyId, id_aes256_CBC } from './envelope.js';
