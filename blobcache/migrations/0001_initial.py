"""The permission host only: an unmanaged model, so no table is created."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []  # type: ignore[var-annotated]

    operations = [
        migrations.CreateModel(
            name="CachedDescriptor",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "cached descriptor",
                "verbose_name_plural": "cached descriptors",
                "permissions": [
                    ("view_descriptor", "Can read cached blob descriptors and listings"),
                    ("change_descriptor", "Can set cached blob descriptors"),
                    ("delete_descriptor", "Can clear cached descriptors and repository scopes"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
