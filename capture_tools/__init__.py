"""capture_tools"""
