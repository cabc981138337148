"""AWS facts and helpers: IAM documents, the EKS calendar, GPU instance table, VPC endpoints."""
