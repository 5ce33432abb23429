"""avatars"""
