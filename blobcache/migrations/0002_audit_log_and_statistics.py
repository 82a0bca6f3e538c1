"""The audit log and the last full counts of the cache."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("blobcache", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "timestamp",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                (
                    "interface",
                    models.CharField(
                        choices=[
                            ("api", "api"),
                            ("admin", "admin"),
                            ("command", "command"),
                            ("notifications", "notifications"),
                            ("python", "python"),
                        ],
                        db_index=True,
                        max_length=16,
                    ),
                ),
                ("user", models.CharField(blank=True, max_length=255)),
                (
                    "operation",
                    models.CharField(
                        choices=[
                            ("set", "set"),
                            ("clear", "clear"),
                            ("clear_repository_scope", "clear_repository_scope"),
                            ("clear_everywhere", "clear_everywhere"),
                            ("clear_all", "clear_all"),
                            ("clear_digests", "clear_digests"),
                            ("reconcile", "reconcile"),
                            ("notifications", "notifications"),
                        ],
                        db_index=True,
                        max_length=32,
                    ),
                ),
                (
                    "scope",
                    models.CharField(
                        blank=True,
                        choices=[("global", "global"), ("repository", "repository")],
                        max_length=16,
                    ),
                ),
                ("repository", models.CharField(blank=True, db_index=True, max_length=255)),
                ("digest", models.CharField(blank=True, db_index=True, max_length=200)),
                ("cleared", models.BigIntegerField(blank=True, null=True)),
                ("keys_deleted", models.BigIntegerField(blank=True, null=True)),
                ("counts", models.JSONField(blank=True, default=dict)),
                ("dry_run", models.BooleanField(default=False)),
                (
                    "outcome",
                    models.CharField(
                        choices=[
                            ("ok", "ok"),
                            ("miss", "miss"),
                            ("corrupt", "corrupt"),
                            ("invalid", "invalid"),
                            ("unavailable", "unavailable"),
                            ("interrupted", "interrupted"),
                            ("refused", "refused"),
                            ("error", "error"),
                        ],
                        default="ok",
                        max_length=32,
                    ),
                ),
                ("detail", models.TextField(blank=True)),
            ],
            options={
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit log",
                "ordering": ["-timestamp", "-id"],
                "default_permissions": ("view",),
            },
        ),
        migrations.CreateModel(
            name="CacheStatistics",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "started_at",
                    models.DateTimeField(db_index=True, default=django.utils.timezone.now),
                ),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "state",
                    models.CharField(
                        choices=[("running", "running"), ("done", "done"), ("failed", "failed")],
                        db_index=True,
                        default="running",
                        max_length=16,
                    ),
                ),
                ("descriptors", models.BigIntegerField(blank=True, null=True)),
                ("repositories", models.BigIntegerField(blank=True, null=True)),
                ("memberships", models.BigIntegerField(blank=True, null=True)),
                ("repository_hashes", models.BigIntegerField(blank=True, null=True)),
                ("memory_bytes", models.BigIntegerField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
                ("user", models.CharField(blank=True, max_length=255)),
                (
                    "interface",
                    models.CharField(
                        choices=[
                            ("api", "api"),
                            ("admin", "admin"),
                            ("command", "command"),
                            ("notifications", "notifications"),
                            ("python", "python"),
                        ],
                        max_length=16,
                    ),
                ),
            ],
            options={
                "verbose_name": "cache statistics",
                "verbose_name_plural": "cache statistics",
                "ordering": ["-started_at", "-id"],
                "default_permissions": (),
            },
        ),
    ]
