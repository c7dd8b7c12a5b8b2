"""J-LIS: number generation, the identity mirror (本人確認情報) and its queries."""
