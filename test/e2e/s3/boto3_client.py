# boto3 against the Coffer S3 endpoint (called by s3-clients.test.ts): concurrent multipart upload_file and
# download_file, the list paginator, ranged and conditional gets, checksums as boto3 sends them by default
# (CRC32 in an aws-chunked trailer), metadata round trip. Prints one JSON object of results; the TypeScript
# test asserts on them. Trusts only the endpoint's pinned certificate (verify=CA).
import hashlib, json, os, sys
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

url, ca, key_id, secret, work = sys.argv[1:6]
s3 = boto3.client('s3', endpoint_url=url, aws_access_key_id=key_id, aws_secret_access_key=secret, region_name='us-east-1',
                  verify=ca, config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}))
out = {}
def sha(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()

s3.create_bucket(Bucket='boto')
src = os.path.join(work, 'boto-src.bin')
with open(src, 'wb') as f:
    f.write(os.urandom(40 * 1024 * 1024 + 12345))
cfg = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=4)
s3.upload_file(src, 'boto', 'deep/dir/big.bin', Config=cfg, ExtraArgs={'Metadata': {'project': 'coffer'}, 'ContentType': 'application/x-test'})
dst = os.path.join(work, 'boto-dst.bin')
s3.download_file('boto', 'deep/dir/big.bin', dst, Config=cfg)
out['big_sha_match'] = sha(src) == sha(dst)
head = s3.head_object(Bucket='boto', Key='deep/dir/big.bin')
out['big_etag'] = head['ETag']
out['big_meta'] = head['Metadata']
out['big_type'] = head['ContentType']
out['big_size'] = head['ContentLength']

# single PUT: ETag is the MD5 of the plaintext; boto3 adds its CRC32 checksum
body = os.urandom(100000)
r = s3.put_object(Bucket='boto', Key='small.bin', Body=body)
out['small_etag_is_md5'] = r['ETag'] == '"%s"' % hashlib.md5(body).hexdigest()
got = s3.get_object(Bucket='boto', Key='small.bin', Range='bytes=1000-1999')
out['range_ok'] = got['Body'].read() == body[1000:2000] and got['ContentRange'] == 'bytes 1000-1999/100000'
try:
    s3.get_object(Bucket='boto', Key='small.bin', IfNoneMatch=r['ETag'])
    out['if_none_match'] = 'no error'
except ClientError as e:
    out['if_none_match'] = e.response['ResponseMetadata']['HTTPStatusCode']
try:
    s3.put_object(Bucket='boto', Key='bad.bin', Body=b'abc', ChecksumSHA256='47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=')
    out['bad_checksum'] = 'no error'
except ClientError as e:
    out['bad_checksum'] = e.response['Error']['Code']
try:
    s3.head_object(Bucket='boto', Key='bad.bin')
    out['bad_stored'] = True
except ClientError:
    out['bad_stored'] = False

for i in range(25):
    s3.put_object(Bucket='boto', Key='many/k%02d' % i, Body=b'x' * i)
keys = []
pages = 0
for page in s3.get_paginator('list_objects_v2').paginate(Bucket='boto', Prefix='many/', PaginationConfig={'PageSize': 7}):
    pages += 1
    keys += [o['Key'] for o in page.get('Contents', [])]
out['paginated_keys'] = keys
out['pages'] = pages
v1 = []
for page in s3.get_paginator('list_objects').paginate(Bucket='boto', Prefix='many/', PaginationConfig={'PageSize': 10}):
    v1 += [o['Key'] for o in page.get('Contents', [])]
out['v1_keys'] = v1
try:
    s3.get_object(Bucket='boto', Key='nope')
except ClientError as e:
    out['missing'] = e.response['Error']['Code']
try:
    s3.put_bucket_versioning(Bucket='boto', VersioningConfiguration={'Status': 'Enabled'})
    out['versioning'] = 'no error'
except ClientError as e:
    out['versioning'] = e.response['Error']['Code']
print(json.dumps(out))
