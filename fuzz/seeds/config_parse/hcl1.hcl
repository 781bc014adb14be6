# HCL v1 forms: items on one line, blocks in object attributes, quoted keys, octal and hex.
auto_auth = {
  method "approle" { wrap_ttl = "5m" config = { role_id_file_path = "/r", secret_id = "s" } }
  sink { type = "file" config = { path = "/t", mode = 0640, uid = 0x3e8 } }
}
"vault" = { address = "http://127.0.0.1:8200" namespace = "/ns1" }
listener "tcp" { address = "127.0.0.1:8100" tls_disable = true }
template {
  contents = <<-EOT
    {{ with secret "kv/data/x" }}{{ .Data.data.k }}{{ end }}
    EOT
  destination = "/d"
  perms = 0600
  wait { min = "1s" }
  wait { max = "4s" }
}
disable_keep_alives = ["templating",]
/* block comment */ log_format = "json" // trailing
