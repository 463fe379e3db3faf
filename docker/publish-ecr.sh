#!/usr/bin/env bash
# Ship sagestep to an AWS account: push the five step images to ECR, then create or update the
# SageMaker pipeline from pipeline.json (unchanged), and start an execution with --start.
# The image URIs reach the pipeline as parameters at start time, so pipeline.json names no
# account. Needs the standard `docker` and `aws` CLIs and credentials for the account.
#
#   docker/publish-ecr.sh --account 123456789012 --region eu-west-1 \
#     --role-arn arn:aws:iam::123456789012:role/SageMakerExecution \
#     --artifact-root s3://my-bucket/auto-mpg [--input-data s3://my-bucket/raw/auto-mpg.data] \
#     [--pipeline-name sagestep-auto-mpg] [--version 0.1.0] [--start] [--dry-run]
#
# --dry-run prints every command instead of running it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

account="" region="" role_arn="" artifact_root="" input_data=""
pipeline_name="sagestep-auto-mpg" version="0.1.0" start=false dry_run=false
usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --account) account=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --role-arn) role_arn=$2; shift 2 ;;
    --artifact-root) artifact_root=$2; shift 2 ;;
    --input-data) input_data=$2; shift 2 ;;
    --pipeline-name) pipeline_name=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --start) start=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h|--help) usage ;;
    *) echo "publish-ecr: unknown argument $1" >&2; usage ;;
  esac
done
for required in account region role_arn artifact_root; do
  if [ -z "${!required}" ]; then
    echo "publish-ecr: --${required//_/-} is required" >&2
    exit 2
  fi
done
if $start && [ -z "$input_data" ]; then
  echo "publish-ecr: --start needs --input-data (the pipeline's InputData has no default)" >&2
  exit 2
fi
[[ "$account" =~ ^[0-9]{12}$ ]] || { echo "publish-ecr: --account must be a 12-digit AWS account id" >&2; exit 2; }
[[ "$artifact_root" == s3://* ]] || { echo "publish-ecr: --artifact-root must be an s3:// URI" >&2; exit 2; }

registry="$account.dkr.ecr.$region.amazonaws.com"
steps=(preprocess train evaluate serve monitor)

# Print the command (dry run) or run it. Commands are strings so that pipes print as written.
run() {
  if $dry_run; then echo "$1"; else echo "+ $1" >&2; eval "$1"; fi
}

if ! $dry_run; then
  command -v aws >/dev/null || { echo "publish-ecr: the aws CLI is not installed" >&2; exit 1; }
  for step in "${steps[@]}"; do
    docker image inspect "sagestep-$step:$version" >/dev/null 2>&1 \
      || { echo "publish-ecr: image sagestep-$step:$version is missing; run docker/build-images.sh" >&2; exit 1; }
  done
fi

run "aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry"
for step in "${steps[@]}"; do
  repo="sagestep-$step"
  run "aws ecr describe-repositories --region $region --repository-names $repo >/dev/null 2>&1 || aws ecr create-repository --region $region --repository-name $repo --image-scanning-configuration scanOnPush=true --image-tag-mutability IMMUTABLE"
  run "docker tag $repo:$version $registry/$repo:$version"
  run "docker push $registry/$repo:$version"
done

definition="file://$PWD/pipeline.json"
upsert_create="aws sagemaker create-pipeline --region $region --pipeline-name $pipeline_name --pipeline-definition $definition --role-arn $role_arn"
upsert_update="aws sagemaker update-pipeline --region $region --pipeline-name $pipeline_name --pipeline-definition $definition --role-arn $role_arn"
if $dry_run; then
  echo "# create the pipeline, or update it if it exists:"
  echo "$upsert_create"
  echo "$upsert_update"
elif aws sagemaker describe-pipeline --region "$region" --pipeline-name "$pipeline_name" >/dev/null 2>&1; then
  run "$upsert_update"
else
  run "$upsert_create"
fi

parameters="Name=PreprocessImage,Value=$registry/sagestep-preprocess:$version"
parameters+=" Name=TrainImage,Value=$registry/sagestep-train:$version"
parameters+=" Name=EvaluateImage,Value=$registry/sagestep-evaluate:$version"
parameters+=" Name=ServeImage,Value=$registry/sagestep-serve:$version"
parameters+=" Name=ExecutionRoleArn,Value=$role_arn Name=ArtifactRoot,Value=$artifact_root"
[ -n "$input_data" ] && parameters+=" Name=InputData,Value=$input_data"
start_command="aws sagemaker start-pipeline-execution --region $region --pipeline-name $pipeline_name --pipeline-parameters $parameters"
if $start || $dry_run; then
  $dry_run && echo "# start an execution (with --start):"
  run "$start_command"
else
  echo "to start an execution:" >&2
  echo "  $start_command" >&2
fi
