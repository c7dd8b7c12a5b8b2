"""Certificate documents (住民票の写し, 住民票記載事項証明書, 印鑑登録証明書): their content, an A4
PDF with an embedded Japanese font and a QR code, the municipality's PAdES signature, and the
check anyone can run on a document. Plain value code shared by the issuing municipality, the
kiosk and the verifier; no role's storage."""
